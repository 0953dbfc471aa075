// Nodes: the fleet filtered by environment, role, zone, tag and state; each node's apps, versions,
// health and last heartbeat; a node's own page with its deploy history.
import { useState } from "preact/hooks";
import { ApiError, Deploy, enc, get, Node, post, qs } from "../api";
import {
  ago,
  canDeploy,
  ConfirmButton,
  ErrorBox,
  fmtTime,
  Route,
  Select,
  setQuery,
  useLoad,
  useMe,
  THead,
} from "../util";
import { DeployList } from "./history";

function Health({ n, app }: { n: Node; app: string }) {
  const a = n.apps[app];
  if (!a) return <span class="muted">not installed (desired {n.desired?.[app]})</span>;
  return (
    <span>
      <span class="version">{a.version || "—"}</span>{" "}
      {n.state !== "alive" ? (
        <span class="flag flag-lost">unknown</span>
      ) : a.healthy ? (
        <span class="ok">healthy</span>
      ) : (
        <span class="bad">{a.running ? "unhealthy" : "stopped"}</span>
      )}
      {a.drift && <span class="flag flag-drift">drift: desired {a.desired}</span>}
    </span>
  );
}

function NodeFlags({ n }: { n: Node }) {
  return (
    <>
      <span class={`badge node-${n.state}`}>{n.state}</span>
      {n.quarantined && (
        <span class="flag flag-quarantine" title={n.quarantine_reason}>
          quarantined
        </span>
      )}
      {n.drift && <span class="flag flag-drift">drift</span>}
    </>
  );
}

function NodeDetail({ name }: { name: string }) {
  const me = useMe();
  const node = useLoad(`node/${name}`, () => get<Node>(`/api/v1/nodes/${enc(name)}`));
  const history = useLoad(`node-history/${name}`, () =>
    get<{ deploys: Deploy[] }>(`/api/v1/deploys${qs({ node: name, limit: 50 })}`),
  );
  const [actionError, setActionError] = useState<ApiError | null>(null);
  const n = node.data;
  return (
    <section>
      <div class="page-head">
        <h1>
          <a href="#/nodes">Nodes</a> / {name}
        </h1>
      </div>
      <ErrorBox error={node.error} />
      <ErrorBox error={actionError} />
      {n && (
        <>
          <dl class="facts">
            <dt>state</dt>
            <dd>
              <NodeFlags n={n} />
            </dd>
            <dt>environment</dt>
            <dd>{n.env}</dd>
            <dt>roles</dt>
            <dd>{n.roles.join(", ") || "—"}</dd>
            <dt>zone</dt>
            <dd>{n.zone || "—"}</dd>
            <dt>tags</dt>
            <dd>
              {Object.entries(n.tags || {})
                .map(([k, v]) => `${k}=${v}`)
                .join(", ") || "—"}
            </dd>
            <dt>address</dt>
            <dd>{n.address}</dd>
            <dt>agent</dt>
            <dd>{n.agent_version}</dd>
            <dt>last heartbeat</dt>
            <dd title={fmtTime(n.last_seen)}>{ago(n.last_seen)}</dd>
            <dt>first seen</dt>
            <dd>{fmtTime(n.first_seen)}</dd>
            {n.quarantined && (
              <>
                <dt>quarantined</dt>
                <dd>
                  {n.quarantine_reason} ({fmtTime(n.quarantined_at)}){" "}
                  {canDeploy(me, n.env) && (
                    <ConfirmButton
                      label="Release"
                      question={`Lift the quarantine of ${n.name}? It converges to its desired releases at once.`}
                      action={() => post(`/api/v1/nodes/${enc(n.name)}/release`)}
                      onDone={node.reload}
                      onError={setActionError}
                    />
                  )}
                </dd>
              </>
            )}
          </dl>
          <h2>Apps</h2>
          <table class="list">
            <THead
              cols={["app", "version and health", "desired", "kept releases", "last healthy release", "updated"]}
            />
            <tbody>
              {[...new Set([...Object.keys(n.apps), ...Object.keys(n.desired || {})])].sort().map((app) => (
                <tr>
                  <td>{app}</td>
                  <td>
                    <Health n={n} app={app} />
                  </td>
                  <td>{n.desired?.[app] || "—"}</td>
                  <td>{n.apps[app]?.releases?.join(", ") || "—"}</td>
                  <td>{n.apps[app]?.last_healthy || "—"}</td>
                  <td>{fmtTime(n.apps[app]?.updated_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      <h2>Deploy history of this node</h2>
      <ErrorBox error={history.error} />
      {history.data && <DeployList deploys={history.data.deploys} />}
    </section>
  );
}

const filterKeys = ["env", "role", "zone", "tag", "state"] as const;

export function Nodes({ route }: { route: Route }) {
  if (route.path[1]) return <NodeDetail name={route.path[1]} />;
  return <NodeList route={route} />;
}

function NodeList({ route }: { route: Route }) {
  const [f, setF] = useState<Record<string, string>>(() =>
    Object.fromEntries(filterKeys.map((k) => [k, route.query.get(k) || ""])),
  );
  // The tag filter is a selector term: KEY=VALUE (tag:KEY=VALUE) or KEY (the tag exists).
  const tag = f.tag.trim();
  const selector = tag ? (tag.includes("=") && !tag.startsWith("tag:") ? `tag:${tag}` : tag) : "";
  const query = qs({ env: f.env, role: f.role, zone: f.zone, state: f.state, selector });
  const nodes = useLoad(`nodes${query}`, () => get<{ nodes: Node[] }>(`/api/v1/nodes${query}`));
  const all = useLoad("nodes-all", () => get<{ nodes: Node[] }>("/api/v1/nodes"));
  const values = (pick: (n: Node) => string[]) =>
    [...new Set((all.data?.nodes || []).flatMap(pick))].filter(Boolean).sort();
  const set = (k: string, v: string) => {
    const next = { ...f, [k]: v };
    setF(next);
    setQuery("/nodes", next);
  };
  const options: Record<string, string[]> = {
    env: values((n) => [n.env]),
    role: values((n) => n.roles),
    zone: values((n) => [n.zone]),
    state: ["alive", "lost", "revoked"],
  };
  const list = nodes.data?.nodes || [];
  const apps = [...new Set(list.flatMap((n) => Object.keys(n.apps)))].sort();
  return (
    <section>
      <div class="page-head">
        <h1>Nodes</h1>
        <button onClick={nodes.reload}>Refresh</button>
      </div>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        {filterKeys.map((k) =>
          k === "tag" ? (
            <label>
              tag
              <input
                name="tag"
                placeholder="canary or team=pay"
                value={f.tag}
                onChange={(e) => set("tag", (e.target as HTMLInputElement).value)}
              />
            </label>
          ) : (
            <Select name={k} value={f[k]} any="any" options={options[k]} onChange={(v) => set(k, v)} />
          ),
        )}
      </form>
      <ErrorBox error={nodes.error} />
      <p class="muted">{list.length} node(s)</p>
      <table class="list nodes">
        <thead>
          <tr>
            <th>node</th>
            <th>env</th>
            <th>roles</th>
            <th>zone</th>
            <th>tags</th>
            <th>state</th>
            {apps.map((a) => (
              <th>{a}</th>
            ))}
            <th>last heartbeat</th>
          </tr>
        </thead>
        <tbody>
          {list.map((n) => (
            <tr class="node-row" data-node={n.name}>
              <td>
                <a href={`#/nodes/${enc(n.name)}`}>{n.name}</a>
              </td>
              <td>{n.env}</td>
              <td>{n.roles.join(", ")}</td>
              <td>{n.zone}</td>
              <td>
                {Object.entries(n.tags || {})
                  .map(([k, v]) => `${k}=${v}`)
                  .join(", ")}
              </td>
              <td>
                <NodeFlags n={n} />
              </td>
              {apps.map((a) => (
                <td>{n.apps[a] || n.desired?.[a] ? <Health n={n} app={a} /> : <span class="muted">—</span>}</td>
              ))}
              <td title={fmtTime(n.last_seen)}>{ago(n.last_seen)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
