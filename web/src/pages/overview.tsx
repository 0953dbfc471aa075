// Overview: environment x app -> version (per role where the nodes differ), drift, quarantined
// and lost nodes flagged, and the deploys running now with their progress.
import { useEffect, useState } from "preact/hooks";
import { Deploy, get, Node, watchDeploy } from "../api";
import { ago, canDeploy, ErrorBox, Progress, StateBadge, useLoad, useMe, THead } from "../util";

interface Cell {
  nodes: Node[];
  versions: Map<string, number>; // version -> nodes
  byRole: Map<string, Map<string, number>>; // role -> version -> nodes
  healthy: number;
  drift: number;
  quarantined: number;
  lost: number;
  desired: Set<string>;
}

function buildMatrix(nodes: Node[]) {
  const envs = new Map<string, Map<string, Cell>>();
  for (const n of nodes) {
    if (n.state === "revoked") continue;
    const apps = new Set([...Object.keys(n.apps || {}), ...Object.keys(n.desired || {})]);
    for (const app of apps) {
      const a = n.apps?.[app];
      let row = envs.get(n.env);
      if (!row) envs.set(n.env, (row = new Map()));
      let cell = row.get(app);
      if (!cell) {
        cell = {
          nodes: [],
          versions: new Map(),
          byRole: new Map(),
          healthy: 0,
          drift: 0,
          quarantined: 0,
          lost: 0,
          desired: new Set(),
        };
        row.set(app, cell);
      }
      cell.nodes.push(n);
      const v = a?.version || "(none)";
      cell.versions.set(v, (cell.versions.get(v) || 0) + 1);
      for (const role of n.roles.length ? n.roles : ["(no role)"]) {
        let r = cell.byRole.get(role);
        if (!r) cell.byRole.set(role, (r = new Map()));
        r.set(v, (r.get(v) || 0) + 1);
      }
      if (a?.healthy) cell.healthy++;
      if (a?.drift) cell.drift++;
      if (n.quarantined) cell.quarantined++;
      if (n.state === "lost") cell.lost++;
      const d = a?.desired || n.desired?.[app];
      if (d) cell.desired.add(d);
    }
  }
  return envs;
}

function Versions({ m }: { m: Map<string, number> }) {
  return (
    <>
      {[...m.entries()].map(([v, count]) => (
        <span class="version" title={`${count} node(s)`}>
          {v}
          {m.size > 1 && <small> ×{count}</small>}
        </span>
      ))}
    </>
  );
}

function MatrixCell({ env, app, cell }: { env: string; app: string; cell: Cell }) {
  const me = useMe();
  // Per role only where the versions differ between roles.
  const perRole = cell.versions.size > 1 && cell.byRole.size > 1;
  const total = cell.nodes.length;
  return (
    <td class={`cell ${cell.drift || cell.quarantined ? "cell-warn" : ""}`} data-env={env} data-app={app}>
      {perRole ? (
        <div class="per-role">
          {[...cell.byRole.entries()].map(([role, m]) => (
            <div>
              <span class="role">{role}</span> <Versions m={m} />
            </div>
          ))}
        </div>
      ) : (
        <Versions m={cell.versions} />
      )}
      <div class="cell-meta">
        <span class={cell.healthy === total ? "ok" : "warn"}>
          {cell.healthy}/{total} healthy
        </span>
        {cell.drift > 0 && <span class="flag flag-drift">{cell.drift} drift</span>}
        {cell.quarantined > 0 && <span class="flag flag-quarantine">{cell.quarantined} quarantined</span>}
        {cell.lost > 0 && <span class="flag flag-lost">{cell.lost} lost</span>}
        {cell.desired.size > 0 && <span class="muted">desired {[...cell.desired].join(", ")}</span>}
      </div>
      {canDeploy(me, env, app) && (
        <div class="cell-actions">
          <a href={`#/deploy?app=${encodeURIComponent(app)}&env=${encodeURIComponent(env)}`}>deploy</a>
          <a href={`#/deploy?mode=rollback&app=${encodeURIComponent(app)}&env=${encodeURIComponent(env)}`}>roll back</a>
        </div>
      )}
    </td>
  );
}

export function RunningDeploys({ running }: { running: Deploy[] }) {
  if (running.length === 0) return <p class="muted">No deploy is running.</p>;
  return (
    <table class="list">
      <THead cols={["#", "app", "version", "env", "state", "batch", "progress", "by"]} />
      <tbody>
        {running.map((d) => (
          <tr class="running-deploy">
            <td>
              <a href={`#/deploys/${d.id}`}>#{d.id}</a>
            </td>
            <td>{d.app}</td>
            <td>
              {d.version}
              {d.kind !== "deploy" && <span class="muted"> ({d.kind})</span>}
            </td>
            <td>{d.env}</td>
            <td>
              <StateBadge state={d.state} /> {d.waiting && <span class="muted">{d.waiting}</span>}
            </td>
            <td>
              {Math.min(d.current_batch + 1, d.batches)}/{d.batches}
            </td>
            <td class="wide">
              <Progress total={d.node_count} ok={d.healthy_count} failed={d.failed_count} />
            </td>
            <td>{d.actor}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function Overview() {
  const status = useLoad("status", () => get<{ nodes: Node[]; running: Deploy[] }>("/api/v1/status"));
  // The running deploys' progress, pushed by the server (a watch WebSocket each, no polling); when
  // one ends, the matrix is loaded again.
  const [progress, setProgress] = useState<Record<number, Partial<Deploy>>>({});
  const runningIds = (status.data?.running || []).map((d) => d.id).join(",");
  useEffect(() => {
    setProgress({});
    const stops = (status.data?.running || []).map((d) =>
      watchDeploy(
        d.id,
        (ev, carried) => {
          if (carried && Object.keys(carried).length > 1) {
            const { nodes: _n, ...summary } = carried;
            setProgress((p) => ({ ...p, [d.id]: { ...p[d.id], ...summary } }));
          }
          if (ev.kind === "deploy.finished") status.reload();
        },
        () => {},
      ),
    );
    return () => stops.forEach((stop) => stop());
  }, [runningIds]);
  const running = (status.data?.running || []).map((d) => ({ ...d, ...progress[d.id] }) as Deploy);
  const nodes = status.data?.nodes || [];
  const matrix = buildMatrix(nodes);
  const apps = [...new Set([...matrix.values()].flatMap((row) => [...row.keys()]))].sort();
  const envs = [...matrix.keys()].sort();
  const flagged = nodes.filter((n) => n.quarantined || n.drift || n.state === "lost");
  const alive = nodes.filter((n) => n.state === "alive").length;
  return (
    <section>
      <div class="page-head">
        <h1>Overview</h1>
        <button onClick={status.reload} disabled={status.loading}>
          Refresh
        </button>
      </div>
      <ErrorBox error={status.error} />
      <div class="stats">
        <div class="stat">
          <b>{nodes.length}</b> nodes
        </div>
        <div class="stat">
          <b>{alive}</b> alive
        </div>
        <div class={`stat ${flagged.length ? "stat-warn" : ""}`}>
          <b>{flagged.length}</b> need attention
        </div>
        <div class="stat">
          <b>{status.data?.running.length ?? 0}</b> running deploys
        </div>
      </div>
      <h2>Running deploys</h2>
      {status.data && <RunningDeploys running={running} />}
      <h2>What runs where</h2>
      {status.data && envs.length === 0 && <p class="muted">No node runs an app yet.</p>}
      {envs.length > 0 && (
        <table class="matrix">
          <thead>
            <tr>
              <th>env \ app</th>
              {apps.map((a) => (
                <th>{a}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {envs.map((env) => (
              <tr>
                <th>
                  <a href={`#/nodes?env=${encodeURIComponent(env)}`}>{env}</a>
                </th>
                {apps.map((app) => {
                  const cell = matrix.get(env)!.get(app);
                  return cell ? <MatrixCell env={env} app={app} cell={cell} /> : <td class="cell empty">—</td>;
                })}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {flagged.length > 0 && (
        <>
          <h2>Nodes that need attention</h2>
          <table class="list">
            <THead cols={["node", "env", "state", "why", "last heartbeat"]} />
            <tbody>
              {flagged.map((n) => (
                <tr class="flagged-node">
                  <td>
                    <a href={`#/nodes/${encodeURIComponent(n.name)}`}>{n.name}</a>
                  </td>
                  <td>{n.env}</td>
                  <td>
                    {n.state === "lost" && <span class="flag flag-lost">LOST</span>}
                    {n.quarantined && <span class="flag flag-quarantine">QUARANTINED</span>}
                    {n.drift && <span class="flag flag-drift">DRIFT</span>}
                  </td>
                  <td>
                    {n.quarantined
                      ? n.quarantine_reason
                      : n.drift
                        ? Object.entries(n.apps)
                            .filter(([, a]) => a.drift)
                            .map(([app, a]) => `${app} runs ${a.version || "nothing"}, desired ${a.desired}`)
                            .join("; ")
                        : ""}
                  </td>
                  <td>{ago(n.last_seen)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
    </section>
  );
}
