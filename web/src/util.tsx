// Small helpers shared by the pages: hash routing, formatting, the signed-in identity, data loading.
import { createContext } from "preact";
import { useCallback, useContext, useEffect, useState } from "preact/hooks";
import { ApiError, Whoami } from "./api";

// The route is the part of the hash after "#", e.g. "/deploys/12?x=1" -> path ["deploys","12"].
export interface Route {
  path: string[];
  query: URLSearchParams;
}

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#/, "") || "/overview";
  const [p, q] = h.split("?", 2);
  return { path: p.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(q || "") };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseHash(location.hash));
  useEffect(() => {
    const f = () => setRoute(parseHash(location.hash));
    addEventListener("hashchange", f);
    return () => removeEventListener("hashchange", f);
  }, []);
  return route;
}

export function navigate(to: string): void {
  location.hash = to;
}

// Replaces the query of the current route without adding a history entry per keystroke.
export function setQuery(path: string, params: Record<string, string>): void {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  history.replaceState(null, "", `#${path}${s ? "?" + s : ""}`);
}

export const Me = createContext<Whoami | null>(null);
export const useMe = () => useContext(Me);

const rank = { viewer: 0, publisher: 1, deployer: 2, admin: 3 } as const;

// Whether the signed-in token may change things in env/app (the server checks it again).
export function canDeploy(me: Whoami | null, env?: string, app?: string): boolean {
  if (!me || rank[me.role] === undefined || rank[me.role] < rank.deployer) return false;
  if (env && me.envs.length > 0 && !me.envs.includes(env)) return false;
  if (app && me.apps.length > 0 && !me.apps.includes(app)) return false;
  return true;
}

export function fmtTime(s: string | null | undefined): string {
  if (!s) return "—";
  const d = new Date(s);
  if (isNaN(d.getTime())) return s;
  return d.toLocaleString(undefined, { hour12: false });
}

export function ago(s: string | null | undefined, now = Date.now()): string {
  if (!s) return "never";
  const t = new Date(s).getTime();
  if (isNaN(t)) return s;
  const sec = Math.round((now - t) / 1000);
  if (sec < 5) return "just now";
  if (sec < 60) return `${sec}s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)}m ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)}h ago`;
  return `${Math.floor(sec / 86400)}d ago`;
}

export function fmtDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms < 0) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s - m * 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m - h * 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

export function fmtSeconds(s: number | null | undefined): string {
  return s === null || s === undefined ? "—" : fmtDuration(s * 1000);
}

export function fmtBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(2)} GiB`;
}

export interface Loaded<T> {
  data: T | undefined;
  error: ApiError | null;
  loading: boolean;
  reload: () => void;
}

// Loads once per change of `key` (and on reload()); keeps the last data while reloading.
export function useLoad<T>(key: string, f: () => Promise<T>): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | null>(null);
  const [loading, setLoading] = useState(true);
  const [n, setN] = useState(0);
  useEffect(() => {
    let live = true;
    setLoading(true);
    f().then(
      (d) => {
        if (!live) return;
        setData(d);
        setError(null);
        setLoading(false);
      },
      (e: unknown) => {
        if (!live) return;
        setError(e instanceof ApiError ? e : new ApiError(0, "internal", String(e)));
        setLoading(false);
      },
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, n]);
  const reload = useCallback(() => setN((x) => x + 1), []);
  return { data, error, loading, reload };
}

export function ErrorBox({ error }: { error: ApiError | null | undefined }) {
  if (!error) return null;
  return (
    <div class="error" role="alert">
      <strong>{error.code}</strong>: {error.message}
    </div>
  );
}

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state}`}>{state.replace("_", " ")}</span>;
}

export function Progress({ total, ok, failed }: { total: number; ok: number; failed: number }) {
  const pct = (x: number) => (total > 0 ? (100 * x) / total : 0);
  return (
    <div class="progress" title={`${ok} healthy, ${failed} failed of ${total}`} aria-label="progress">
      <div class="progress-ok" style={{ width: `${pct(ok)}%` }} />
      <div class="progress-failed" style={{ width: `${pct(failed)}%` }} />
      <span class="progress-text">
        {ok}/{total}
        {failed > 0 ? `, ${failed} failed` : ""}
      </span>
    </div>
  );
}

// A button that asks before it acts; shows what it is doing and the server's error.
export function ConfirmButton(props: {
  label: string;
  question: string;
  action: () => Promise<unknown>;
  danger?: boolean;
  onDone?: () => void;
  onError?: (e: ApiError) => void;
}) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  const run = async () => {
    setBusy(true);
    try {
      await props.action();
      setAsking(false);
      props.onDone?.();
    } catch (e) {
      props.onError?.(e instanceof ApiError ? e : new ApiError(0, "internal", String(e)));
      setAsking(false);
    } finally {
      setBusy(false);
    }
  };
  if (!asking) {
    return (
      <button class={props.danger ? "danger" : ""} onClick={() => setAsking(true)}>
        {props.label}
      </button>
    );
  }
  return (
    <span class="confirm" role="dialog" aria-label={props.question}>
      <span>{props.question}</span>
      <button class={props.danger ? "danger" : "primary"} disabled={busy} onClick={run}>
        {busy ? "…" : `Yes, ${props.label.toLowerCase()}`}
      </button>
      <button disabled={busy} onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

// A table's header row.
export function THead({ cols }: { cols: string[] }) {
  return (
    <thead>
      <tr>
        {cols.map((c) => (
          <th>{c}</th>
        ))}
      </tr>
    </thead>
  );
}

// A labelled <select>: `any` is the label of the empty choice (none: no empty choice).
export function Select(props: {
  name: string;
  label?: string;
  value: string;
  options: (string | [string, string])[];
  any?: string;
  onChange: (v: string) => void;
}) {
  return (
    <label>
      {props.label ?? props.name}
      <select
        name={props.name}
        value={props.value}
        onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}
      >
        {props.any !== undefined && <option value="">{props.any}</option>}
        {props.options.map((o) => {
          const [v, text] = Array.isArray(o) ? o : [o, o];
          return <option value={v}>{text}</option>;
        })}
      </select>
    </label>
  );
}
