// History: every deploy, rollback and convergence, newest first, filtered by app, environment,
// state and node; each links to its page (per-node steps, timings, errors, what changed).
import { useState } from "preact/hooks";
import { Deploy, get, qs } from "../api";
import { ErrorBox, fmtDuration, fmtTime, Progress, Route, Select, setQuery, StateBadge, useLoad, THead } from "../util";

export function DeployList({ deploys }: { deploys: Deploy[] }) {
  if (deploys.length === 0) return <p class="muted">No deploy yet.</p>;
  return (
    <table class="list deploys">
      <THead cols={["#", "kind", "app", "version", "env", "state", "nodes", "started", "took", "by", "reason"]} />
      <tbody>
        {deploys.map((d) => (
          <tr class="deploy-row" data-id={d.id} data-state={d.state}>
            <td>
              <a href={`#/deploys/${d.id}`}>#{d.id}</a>
            </td>
            <td>{d.kind}</td>
            <td>{d.app}</td>
            <td>{d.version}</td>
            <td>{d.env}</td>
            <td>
              <StateBadge state={d.state} />
            </td>
            <td class="narrow">
              <Progress total={d.node_count} ok={d.healthy_count} failed={d.failed_count} />
            </td>
            <td>{fmtTime(d.started_at)}</td>
            <td>{d.finished_at ? fmtDuration(d.duration_ms) : "…"}</td>
            <td>{d.actor}</td>
            <td class="reason">
              {d.forced_freeze && (
                <span class="flag flag-drift" title={d.forced_freeze}>
                  forced
                </span>
              )}
              {d.reason}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const keys = ["app", "env", "state", "node"] as const;
const pageSize = 50;

export function History({ route }: { route: Route }) {
  const [f, setF] = useState<Record<string, string>>(() =>
    Object.fromEntries(keys.map((k) => [k, route.query.get(k) || ""])),
  );
  const [before, setBefore] = useState<number[]>([]); // the pages walked through
  const cursor = before[before.length - 1];
  const query = qs({ ...f, limit: pageSize, before: cursor });
  const deploys = useLoad(`deploys${query}`, () => get<{ deploys: Deploy[] }>(`/api/v1/deploys${query}`));
  const apps = useLoad("artifacts", () => get<{ apps: { app: string }[] }>("/api/v1/artifacts"));
  const set = (k: string, v: string) => {
    const next = { ...f, [k]: v };
    setF(next);
    setBefore([]);
    setQuery("/history", next);
  };
  const list = deploys.data?.deploys || [];
  return (
    <section>
      <div class="page-head">
        <h1>History</h1>
        <button onClick={deploys.reload}>Refresh</button>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <Select
          name="app"
          value={f.app}
          any="any"
          options={(apps.data?.apps || []).map((a) => a.app)}
          onChange={(v) => set("app", v)}
        />
        <label>
          env
          <input name="env" value={f.env} onChange={(e) => set("env", (e.target as HTMLInputElement).value.trim())} />
        </label>
        <Select
          name="state"
          value={f.state}
          any="any"
          options={["running", "paused", "succeeded", "failed", "rolled_back"].map((x) => [x, x.replace("_", " ")])}
          onChange={(v) => set("state", v)}
        />
        <label>
          node
          <input
            name="node"
            value={f.node}
            onChange={(e) => set("node", (e.target as HTMLInputElement).value.trim())}
          />
        </label>
      </form>
      <ErrorBox error={deploys.error} />
      <DeployList deploys={list} />
      <div class="pager">
        {before.length > 0 && <button onClick={() => setBefore(before.slice(0, -1))}>← Newer</button>}
        {list.length === pageSize && (
          <button onClick={() => setBefore([...before, list[list.length - 1].id])}>Older →</button>
        )}
      </div>
    </section>
  );
}
