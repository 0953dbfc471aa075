// Deploy or roll back by button: pick the app, version, environment, selector and strategy; the
// server's preview says how many nodes it will touch (and what would refuse it) before confirming.
import { useEffect, useState } from "preact/hooks";
import { ApiError, ArtifactVersion, Deploy, enc, get, Node, post, Preview } from "../api";
import { canDeploy, ErrorBox, navigate, Route, Select, setQuery, useLoad, useMe, THead } from "../util";

interface Form {
  mode: "deploy" | "rollback";
  app: string;
  version: string; // deploy: "" = the newest; rollback: "" = the previous successful release
  env: string;
  role: string;
  zone: string;
  selector: string;
  strategy: string;
  batch: string;
  canary: string;
  pause: boolean;
  max_unavailable: string;
  force: boolean;
}

function requestBody(f: Form): Record<string, unknown> {
  const b: Record<string, unknown> = { app: f.app, env: f.env };
  const opt = (k: string, v: string) => {
    if (v.trim()) b[k] = v.trim();
  };
  if (f.mode === "deploy") opt("version", f.version);
  else opt("to", f.version);
  opt("role", f.role);
  opt("zone", f.zone);
  if (f.mode === "deploy") opt("selector", f.selector);
  opt("strategy", f.strategy);
  opt("batch", f.batch);
  opt("max_unavailable", f.max_unavailable);
  if (f.mode === "deploy" && f.strategy === "canary") {
    opt("canary", f.canary);
    if (f.pause) b.pause = true;
  }
  if (f.mode === "deploy" && f.force) b.force = true;
  return b;
}

function Text(props: {
  name: string;
  label?: string;
  placeholder: string;
  value: string;
  onInput: (e: Event) => void;
}) {
  return (
    <label>
      {props.label ?? props.name}
      <input name={props.name} placeholder={props.placeholder} value={props.value} onInput={props.onInput} />
    </label>
  );
}

function Check(props: { name: string; checked: boolean; onChange: (v: boolean) => void; children: string }) {
  return (
    <label class="check">
      <input
        type="checkbox"
        name={props.name}
        checked={props.checked}
        onChange={(e) => props.onChange((e.target as HTMLInputElement).checked)}
      />
      {props.children}
    </label>
  );
}

// The nodes a deploy leaves out (names, or node objects).
function LeftOut({ what, v }: { what: string; v: unknown }) {
  if (!Array.isArray(v) || v.length === 0) return null;
  const names = v.map((x) =>
    typeof x === "string"
      ? x
      : (x as { name?: string; node?: string }).name || (x as { node?: string }).node || JSON.stringify(x),
  );
  return (
    <p class="notice">
      Left out, {what}: {names.join(", ")}
    </p>
  );
}

export function NewDeploy({ route }: { route: Route }) {
  const me = useMe();
  const q = route.query;
  const [f, setF] = useState<Form>({
    mode: q.get("mode") === "rollback" ? "rollback" : "deploy",
    app: q.get("app") || "",
    version: q.get("version") || "",
    env: q.get("env") || "",
    role: "",
    zone: "",
    selector: "",
    strategy: "",
    batch: "",
    canary: "1",
    pause: false,
    max_unavailable: "",
    force: false,
  });
  const [preview, setPreview] = useState<Preview | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);

  const apps = useLoad("artifacts", () => get<{ apps: { app: string; latest: string }[] }>("/api/v1/artifacts"));
  const versions = useLoad(`versions/${f.app}`, () =>
    f.app ? get<{ versions: ArtifactVersion[] }>(`/api/v1/artifacts/${enc(f.app)}`) : Promise.resolve({ versions: [] }),
  );
  const nodes = useLoad("nodes-all", () => get<{ nodes: Node[] }>("/api/v1/nodes"));
  const all = nodes.data?.nodes || [];
  const envs = [...new Set(all.map((n) => n.env))].sort();
  const inEnv = all.filter((n) => n.env === f.env);
  const roles = [...new Set(inEnv.flatMap((n) => n.roles))].sort();
  const zones = [...new Set(inEnv.map((n) => n.zone).filter(Boolean))].sort();

  // Defaults once the lists are known: the first app and environment.
  useEffect(() => {
    if (!f.app && apps.data?.apps.length) setF((x) => ({ ...x, app: apps.data!.apps[0].app }));
  }, [apps.data]);
  useEffect(() => {
    if (!f.env && envs.length) setF((x) => ({ ...x, env: envs[0] }));
  }, [envs.join(",")]);
  // Any change invalidates the preview.
  useEffect(() => {
    setPreview(null);
    setQuery("/deploy", { mode: f.mode === "rollback" ? "rollback" : "", app: f.app, env: f.env, version: f.version });
  }, [JSON.stringify(f)]);

  const set = <K extends keyof Form>(k: K, v: Form[K]) => setF((x) => ({ ...x, [k]: v }));
  const input = (k: keyof Form) => (e: Event) => set(k, (e.target as HTMLInputElement).value as never);

  const base = f.mode === "deploy" ? "/api/v1/deploys" : "/api/v1/rollbacks";
  const doPreview = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      setPreview(await post<Preview>(`${base}/preview`, requestBody(f)));
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  const doIt = async () => {
    setBusy(true);
    setError(null);
    try {
      const d = await post<Deploy>(base, requestBody(f));
      navigate(`/deploys/${d.id}`);
    } catch (err) {
      setError(err as ApiError);
      setPreview(null);
    } finally {
      setBusy(false);
    }
  };

  const allowed = canDeploy(me, f.env, f.app);
  const vlist = [...(versions.data?.versions || [])].reverse();
  const word = f.mode === "deploy" ? "Deploy" : "Roll back";
  return (
    <section>
      <div class="page-head">
        <h1>{f.mode === "deploy" ? "Deploy" : "Roll back"}</h1>
        <div class="tabs">
          <button
            class={f.mode === "deploy" ? "active" : ""}
            onClick={() => (set("mode", "deploy"), set("version", ""))}
          >
            Deploy
          </button>
          <button
            class={f.mode === "rollback" ? "active" : ""}
            onClick={() => (set("mode", "rollback"), set("version", ""))}
          >
            Roll back
          </button>
        </div>
      </div>
      {!canDeploy(me) && (
        <p class="notice" role="note">
          Your token ({me?.name}, role {me?.role}) may only look: deploying and rolling back need a deployer or admin
          token.
        </p>
      )}
      <ErrorBox error={apps.error || nodes.error} />
      <form class="deploy-form card" onSubmit={doPreview}>
        <label>
          app
          <select
            name="app"
            value={f.app}
            onChange={(e) => (set("app", (e.target as HTMLSelectElement).value), set("version", ""))}
          >
            {(apps.data?.apps || []).map((a) => (
              <option value={a.app}>{a.app}</option>
            ))}
          </select>
        </label>
        <label>
          {f.mode === "deploy" ? "version" : "to"}
          <select name="version" value={f.version} onChange={input("version")}>
            <option value="">{f.mode === "deploy" ? "the newest" : "the previous successful release"}</option>
            {vlist.map((v) => (
              <option value={v.version}>{v.version}</option>
            ))}
          </select>
        </label>
        <Select
          name="env"
          label="environment"
          value={f.env}
          options={f.env && !envs.includes(f.env) ? [...envs, f.env] : envs}
          onChange={(v) => set("env", v)}
        />
        <Select name="role" value={f.role} any="every role" options={roles} onChange={(v) => set("role", v)} />
        <Select name="zone" value={f.zone} any="every zone" options={zones} onChange={(v) => set("zone", v)} />
        {f.mode === "deploy" && (
          <Text
            name="selector"
            placeholder="e.g. zone!=b, tag:team=pay"
            value={f.selector}
            onInput={input("selector")}
          />
        )}
        <label>
          strategy
          <select name="strategy" value={f.strategy} onChange={input("strategy")}>
            <option value="">rolling (default)</option>
            {f.mode === "deploy" && <option value="canary">canary</option>}
            <option value="zones">zones, one at a time</option>
            <option value="all">all at once</option>
          </select>
        </label>
        <Text
          name="batch"
          placeholder={f.mode === "deploy" ? "25%" : "that of the last deploy"}
          value={f.batch}
          onInput={input("batch")}
        />
        <Text
          name="max_unavailable"
          label="max unavailable"
          placeholder="e.g. 1 or 10%"
          value={f.max_unavailable}
          onInput={input("max_unavailable")}
        />
        {f.mode === "deploy" && f.strategy === "canary" && (
          <>
            <Text name="canary" placeholder="1, 10% or tag:canary=yes" value={f.canary} onInput={input("canary")} />
            <Check name="pause" checked={f.pause} onChange={(v) => set("pause", v)}>
              pause after the canaries until promoted
            </Check>
          </>
        )}
        {f.mode === "deploy" &&
        (preview?.freezes?.length || /freez/i.test(preview?.blocked || error?.message || "") || f.force) ? (
          <Check name="force" checked={f.force} onChange={(v) => set("force", v)}>
            force through the freeze (recorded)
          </Check>
        ) : null}
        <div class="form-actions">
          {allowed && (
            <button class="primary" type="submit" disabled={busy || !f.app || !f.env}>
              Preview
            </button>
          )}
        </div>
      </form>
      <ErrorBox error={error} />
      {preview && (
        <div class="card preview" data-count={preview.count}>
          <h2>
            {f.mode === "deploy"
              ? `Deploy ${preview.app} ${preview.version ?? ""} to ${preview.env}: `
              : `Roll back ${preview.app} in ${preview.env} to ${preview.version ?? "?"}: `}
            <span class="count">
              {preview.count} node{preview.count === 1 ? "" : "s"}
            </span>
            , {preview.batches} batch{preview.batches === 1 ? "" : "es"}
          </h2>
          {preview.how && <p class="muted how">{preview.how}</p>}
          {(preview.freezes?.length ?? 0) > 0 && (
            <div class="notice">
              Frozen:
              <ul>
                {preview.freezes!.map((fr) => (
                  <li>
                    {fr.app ? `${fr.app} in ${fr.env}` : `all of ${fr.env}`} until {fr.until} by {fr.created_by}:{" "}
                    {fr.reason}
                  </li>
                ))}
              </ul>
            </div>
          )}
          {preview.forced_freeze && <div class="notice">Forced through: {preview.forced_freeze}</div>}
          <LeftOut what="lost" v={preview.lost_nodes_left_out} />
          <LeftOut what="quarantined" v={preview.quarantined_nodes_left_out} />
          {preview.blocked && (
            <div class="error" role="alert">
              It would be refused: {preview.blocked}
            </div>
          )}
          <table class="list">
            <THead cols={["node", "batch", "zone", "roles", "now runs"]} />
            <tbody>
              {preview.nodes.map((n) => (
                <tr>
                  <td>
                    {n.name}
                    {n.canary && <span class="flag flag-canary">canary</span>}
                  </td>
                  <td>{n.batch === undefined ? "" : n.batch + 1}</td>
                  <td>{n.zone}</td>
                  <td>{n.roles.join(", ")}</td>
                  <td>{n.from_version || "—"}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {allowed && !preview.blocked && preview.count > 0 && (
            <div class="form-actions">
              <button class={f.mode === "deploy" ? "primary" : "danger"} disabled={busy} onClick={doIt}>
                {word} {preview.count} node{preview.count === 1 ? "" : "s"} to {preview.version ?? ""}
              </button>
              <button onClick={() => setPreview(null)}>Cancel</button>
            </div>
          )}
        </div>
      )}
    </section>
  );
}
