// A deploy, live: each node's step as the server pushes it over the watch WebSocket (no polling),
// the batch it is in, its steps' output on click; promote, pause, resume and abort with a
// confirmation, when the token's role allows; and, once over, what changed since the release before
// (the artifact's files, the config's keys).
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, ArtifactDiff, Deploy, DeployNode, enc, get, post, qs, Step, watchDeploy, WatchEvent } from "../api";
import {
  canDeploy,
  ConfirmButton,
  ErrorBox,
  fmtBytes,
  fmtDuration,
  fmtTime,
  Progress,
  StateBadge,
  useMe,
  THead,
} from "../util";

const live = (d: Deploy | null) => !!d && (d.state === "running" || d.state === "paused");

function applyEvent(d: Deploy, ev: WatchEvent, carried: Partial<Deploy> | undefined): Deploy {
  // deploy.started / deploy.finished carry the whole deploy; most others its summary; node.step only the id.
  let next: Deploy = { ...d };
  if (carried && Object.keys(carried).length > 1) {
    const { nodes, ...summary } = carried;
    next = { ...next, ...summary };
    if (nodes) next.nodes = nodes;
  }
  if (ev.node && next.nodes) {
    next.nodes = next.nodes.map((n) => {
      if (n.node !== ev.node) return n;
      if (ev.kind === "node.step") {
        return {
          ...n,
          step: ev.step,
          status: n.status === "pending" ? "running" : n.status,
          started_at: n.started_at || ev.at,
        };
      }
      if (ev.kind === "node.finished") {
        return {
          ...n,
          status: ev.status || n.status,
          reason: ev.message || n.reason,
          finished_at: n.finished_at || ev.at,
        };
      }
      return n;
    });
  }
  if (ev.kind === "node.step" && ev.node) {
    const steps = [...(next.steps || [])];
    const i = steps.findIndex((s) => s.node === ev.node && s.step === ev.step && s.status === "started");
    const s: Step = {
      node: ev.node,
      step: ev.step,
      status: ev.status,
      output: ev.message || "",
      started_at: ev.at,
      duration_ms: ev.duration_ms,
    };
    if (i >= 0) steps[i] = { ...steps[i], ...s, started_at: steps[i].started_at, output: s.output || steps[i].output };
    else steps.push(s);
    next.steps = steps;
  }
  return next;
}

function Controls({ d, reload, onError }: { d: Deploy; reload: () => void; onError: (e: ApiError) => void }) {
  const me = useMe();
  if (!canDeploy(me, d.env, d.app)) return null;
  const base = `/api/v1/deploys/${d.id}`;
  const what = `#${d.id} (${d.app} ${d.version} to ${d.env})`;
  const buttons = [];
  if (live(d)) {
    if (d.canary_gate || d.state === "paused") {
      buttons.push(
        <ConfirmButton
          label="Promote"
          question={`Promote ${what}: the rest of the nodes roll out?`}
          action={() => post(`${base}/promote`)}
          onDone={reload}
          onError={onError}
        />,
      );
    }
    if (d.state === "running") {
      buttons.push(
        <ConfirmButton
          label="Pause"
          question={`Pause ${what}? The nodes in flight finish, no new one starts.`}
          action={() => post(`${base}/pause`)}
          onDone={reload}
          onError={onError}
        />,
      );
    }
    if (d.state === "paused") {
      buttons.push(
        <ConfirmButton
          label="Resume"
          question={`Resume ${what}?`}
          action={() => post(`${base}/resume`)}
          onDone={reload}
          onError={onError}
        />,
      );
    }
    buttons.push(
      <ConfirmButton
        label="Abort"
        danger
        question={`Abort ${what} and roll back the nodes it changed?`}
        action={() => post(`${base}/abort`, { rollback: true })}
        onDone={reload}
        onError={onError}
      />,
    );
  } else {
    buttons.push(
      <a class="button" href={`#/deploy?mode=rollback&app=${enc(d.app)}&env=${enc(d.env)}`}>
        Roll back {d.app} in {d.env}…
      </a>,
    );
    if (d.state !== "succeeded") {
      buttons.push(
        <a class="button" href={`#/deploy?app=${enc(d.app)}&env=${enc(d.env)}&version=${enc(d.version)}`}>
          Deploy again…
        </a>,
      );
    }
  }
  return <div class="controls">{buttons}</div>;
}

function NodeRows({ n, steps }: { n: DeployNode; steps: Step[] }) {
  const [open, setOpen] = useState(false);
  const took =
    n.started_at && n.finished_at ? new Date(n.finished_at).getTime() - new Date(n.started_at).getTime() : null;
  return (
    <>
      <tr
        class={`node-row status-${n.status}`}
        data-node={n.node}
        data-status={n.status}
        onClick={() => setOpen(!open)}
        title="show its steps and their output"
      >
        <td>
          <span class="caret">{open ? "▾" : "▸"}</span> {n.node}
          {n.canary && <span class="flag flag-canary">canary</span>}
        </td>
        <td>{n.zone}</td>
        <td>{n.batch + 1}</td>
        <td>{n.from_version || "—"}</td>
        <td>
          <StateBadge state={n.status} />
        </td>
        <td class="step">{n.step || "—"}</td>
        <td>{fmtDuration(took)}</td>
        <td class="reason">
          {n.reason}
          {n.reverted_to && <span class="muted"> reverted to {n.reverted_to}</span>}
        </td>
      </tr>
      {open && (
        <tr class="steps-row">
          <td colSpan={8}>
            {steps.length === 0 ? (
              <p class="muted">
                {n.status === "skipped" ? "Skipped: the deploy stopped before this node." : "No step recorded yet."}
              </p>
            ) : (
              <table class="steps">
                <tbody>
                  {steps.map((s) => (
                    <tr class={`step-${s.status}`}>
                      <td>{s.step}</td>
                      <td>
                        <StateBadge state={s.status} />
                      </td>
                      <td>{fmtTime(s.started_at)}</td>
                      <td>{s.status === "started" ? "…" : fmtDuration(s.duration_ms)}</td>
                      <td class="output">{s.output ? <pre>{s.output}</pre> : <span class="muted">no output</span>}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </td>
        </tr>
      )}
    </>
  );
}

function Changes({ d }: { d: Deploy }) {
  // The release the nodes ran before: the most common from_version.
  const counts = new Map<string, number>();
  for (const n of d.nodes || [])
    if (n.from_version && n.from_version !== d.version)
      counts.set(n.from_version, (counts.get(n.from_version) || 0) + 1);
  const from = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] || "";
  const [diff, setDiff] = useState<ArtifactDiff | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  useEffect(() => {
    setDiff(null);
    setError(null);
    // Without a release on the nodes before, against the version before this one.
    get<ArtifactDiff>(`/api/v1/artifacts/${enc(d.app)}/${enc(d.version)}/diff${qs({ from })}`).then(setDiff, setError);
  }, [d.app, d.version, from]);
  const cc = d.config_changes;
  return (
    <div class="changes">
      <h2>What changed</h2>
      <h3>Artifact {diff?.from ? `${diff.from} → ${d.version}` : d.version}</h3>
      {diff && !diff.from && <p class="muted">The first release of {d.app}: nothing to compare with.</p>}
      <ErrorBox error={error} />
      {diff?.from && (
        <div class="diff">
          <p class="muted">
            {diff.added_count ?? diff.added.length} added, {diff.removed_count ?? diff.removed.length} removed,{" "}
            {diff.changed_count ?? diff.changed.length} changed, {diff.unchanged} unchanged
            {diff.truncated && " (lists cut short)"}
          </p>
          <ul>
            {diff.added.map((f) => (
              <li class="added">
                + {f.path} <span class="muted">{fmtBytes(f.size)}</span>
              </li>
            ))}
            {diff.removed.map((f) => (
              <li class="removed">
                − {f.path} <span class="muted">{fmtBytes(f.size)}</span>
              </li>
            ))}
            {diff.changed.map((f) => (
              <li class="changed">
                ~ {f.path}{" "}
                <span class="muted">
                  {f.change && f.change !== "content" ? `${f.change}, ` : ""}
                  {fmtBytes(f.from_size)} → {fmtBytes(f.to_size)}
                </span>
              </li>
            ))}
          </ul>
        </div>
      )}
      <h3>Config</h3>
      {cc === null || cc === undefined ? (
        <p class="muted">
          The first deploy of {d.app} in {d.env}: nothing to compare with.
        </p>
      ) : cc.changes.length === 0 ? (
        <p class="muted">
          No key changed since deploy <a href={`#/deploys/${cc.previous_deploy}`}>#{cc.previous_deploy}</a> (config
          version {cc.to_version}).
        </p>
      ) : (
        <>
          <p class="muted">
            Since deploy <a href={`#/deploys/${cc.previous_deploy}`}>#{cc.previous_deploy}</a>: config version{" "}
            {cc.from_version} → {cc.to_version}
          </p>
          <ul class="diff">
            {cc.changes.map((c) => (
              <li class={c.change}>
                {c.change === "added" ? "+" : c.change === "removed" ? "−" : "~"} {c.key}{" "}
                {c.secret && <span class="muted">(secret)</span>} <span class="muted">{c.change}</span>
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}

export function DeployLive({ id }: { id: number }) {
  const [d, setD] = useState<Deploy | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const [conn, setConn] = useState<"none" | "live" | "lost">("none");
  const [reconnect, setReconnect] = useState(0);
  const refetchTimer = useRef<number | undefined>(undefined);

  const load = () =>
    get<Deploy>(`/api/v1/deploys/${id}?steps=1`).then(
      (x) => {
        setD(x);
        setError(null);
        return x;
      },
      (e: ApiError) => {
        setError(e);
        return null;
      },
    );
  // After a node finishes (or the deploy does), its recorded steps and output: one fetch per burst
  // of events, never on a timer.
  const refetchSoon = () => {
    clearTimeout(refetchTimer.current);
    refetchTimer.current = window.setTimeout(load, 250);
  };

  useEffect(() => {
    let stop: (() => void) | undefined;
    let cancelled = false;
    load().then((x) => {
      if (cancelled || !live(x)) return;
      setConn("live");
      stop = watchDeploy(
        id,
        (ev, carried) => {
          setD((cur) => (cur ? applyEvent(cur, ev, carried) : cur));
          if (ev.kind === "node.finished" || ev.kind === "deploy.finished" || ev.kind === "revert.started")
            refetchSoon();
        },
        () => {
          // The server closes after deploy.finished; otherwise the connection was lost.
          load().then((y) => {
            if (cancelled) return;
            if (live(y)) {
              setConn("lost");
              window.setTimeout(() => !cancelled && setReconnect((r) => r + 1), 2000);
            } else setConn("none");
          });
        },
      );
    });
    return () => {
      cancelled = true;
      stop?.();
      clearTimeout(refetchTimer.current);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [id, reconnect]);

  if (!d) {
    return (
      <section>
        <h1>Deploy #{id}</h1>
        {error ? <ErrorBox error={error} /> : <p class="muted">Loading…</p>}
      </section>
    );
  }
  const stepsOf = (node: string) => (d.steps || []).filter((s) => s.node === node);
  const batches = [...new Set((d.nodes || []).map((n) => n.batch))].sort((a, b) => a - b);
  return (
    <section class="deploy-page" data-state={d.state}>
      <div class="page-head">
        <h1>
          <a href="#/history">History</a> / #{d.id} {d.kind !== "deploy" && <span class="muted">{d.kind}</span>} {d.app}{" "}
          {d.version} → {d.env}
        </h1>
        <StateBadge state={d.state} />
        {conn === "live" && live(d) && (
          <span class="live-dot" title="updates pushed by the server over a WebSocket">
            live
          </span>
        )}
        {conn === "lost" && <span class="flag flag-lost">connection lost, reconnecting…</span>}
      </div>
      <ErrorBox error={error} />
      <ErrorBox error={actionError} />
      <Controls d={d} reload={() => (setActionError(null), load())} onError={setActionError} />
      <Progress total={d.node_count} ok={d.healthy_count} failed={d.failed_count} />
      <dl class="facts">
        <dt>phase</dt>
        <dd>{d.phase || "—"}</dd>
        {d.waiting && (
          <>
            <dt>waiting</dt>
            <dd class="notice">{d.waiting}</dd>
          </>
        )}
        {d.reason && (
          <>
            <dt>reason</dt>
            <dd class="reason">{d.reason}</dd>
          </>
        )}
        <dt>strategy</dt>
        <dd>
          {d.strategy}, batch {d.batch}
          {d.strategy === "canary" && `, canary ${d.canary}`}
          {d.selector && `, selector ${d.selector}`}
        </dd>
        <dt>batch</dt>
        <dd>
          {Math.min(d.current_batch + 1, d.batches)} of {d.batches}
        </dd>
        <dt>by</dt>
        <dd>{d.actor}</dd>
        <dt>started</dt>
        <dd>{fmtTime(d.started_at)}</dd>
        <dt>took</dt>
        <dd>{d.finished_at ? fmtDuration(d.duration_ms) : "running…"}</dd>
        {d.forced_freeze && (
          <>
            <dt>forced through</dt>
            <dd>{d.forced_freeze}</dd>
          </>
        )}
      </dl>
      <h2>Nodes</h2>
      <p class="muted">Click a node for its steps and their output.</p>
      {batches.map((b) => (
        <div class={`batch ${b === d.current_batch && live(d) ? "batch-current" : ""}`}>
          <h3>Batch {b + 1}</h3>
          <table class="list deploy-nodes">
            <THead cols={["node", "zone", "batch", "from", "status", "step", "took", "reason"]} />
            <tbody>
              {(d.nodes || [])
                .filter((n) => n.batch === b)
                .map((n) => (
                  <NodeRows n={n} steps={stepsOf(n.node)} />
                ))}
            </tbody>
          </table>
        </div>
      ))}
      {d.log && d.log.length > 0 && (
        <>
          <h2>Log</h2>
          <table class="list log">
            <tbody>
              {d.log.map((t) => (
                <tr>
                  <td>{fmtTime(t.at)}</td>
                  <td>{t.actor}</td>
                  <td>
                    <StateBadge state={t.action} />
                  </td>
                  <td>{t.detail}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {!live(d) && <Changes d={d} />}
    </section>
  );
}
