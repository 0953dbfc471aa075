// The Slipway console: sign in with a token, then the pages below, chosen by the URL's hash.
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, call, onUnauthorized, saveToken, savedToken, Whoami } from "./api";
import { ErrorBox, Me, useRoute } from "./util";
import { Overview } from "./pages/overview";
import { Nodes } from "./pages/nodes";
import { DeployLive } from "./pages/deploy_live";
import { NewDeploy } from "./pages/new_deploy";
import { History } from "./pages/history";
import { Metrics } from "./pages/metrics";
import "./style.css";

function Logo() {
  return (
    <svg class="logo" viewBox="0 0 24 24" width="20" height="20" aria-hidden="true">
      <path d="M12 2 L12 16 L4 16 Z" fill="#7fa7ff" />
      <path d="M13 5 L13 16 L19 16 Z" fill="#cfd9f5" />
      <path d="M2 18 H22 L19 22 H5 Z" fill="#e9eef9" />
    </svg>
  );
}

function SignIn({ onSignedIn, why }: { onSignedIn: (me: Whoami) => void; why: string }) {
  const [token, setToken] = useState("");
  const [error, setError] = useState<ApiError | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    const t = token.trim();
    if (!t) return;
    setBusy(true);
    try {
      const me = await call<Whoami>("GET", "/api/v1/whoami", undefined, t);
      saveToken(t);
      onSignedIn(me);
    } catch (err) {
      setError(err as ApiError);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <form onSubmit={submit} class="card">
        <h1>
          <Logo /> Slipway
        </h1>
        <p class="muted">
          Sign in with an API token (<code>slipway token create</code>) or the server's admin token.
        </p>
        {why && <p class="notice">{why}</p>}
        <label>
          Token
          <input
            type="password"
            name="token"
            autoComplete="off"
            value={token}
            onInput={(e) => setToken((e.target as HTMLInputElement).value)}
            autoFocus
          />
        </label>
        <button class="primary" type="submit" disabled={busy || !token.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        <ErrorBox error={error} />
      </form>
    </main>
  );
}

const pages: [string, string][] = [
  ["overview", "Overview"],
  ["nodes", "Nodes"],
  ["deploy", "Deploy"],
  ["history", "History"],
  ["metrics", "Metrics"],
];

function Page() {
  const route = useRoute();
  const [first, second] = route.path;
  switch (first) {
    case "nodes":
      return <Nodes route={route} />;
    case "deploys":
      if (second && /^\d+$/.test(second)) return <DeployLive id={Number(second)} />;
      return <History route={route} />;
    case "deploy":
      return <NewDeploy route={route} />;
    case "history":
      return <History route={route} />;
    case "metrics":
      return <Metrics route={route} />;
    case "overview":
    case undefined:
      return <Overview />;
    default:
      return <div class="error">There is no page “{route.path.join("/")}”.</div>;
  }
}

function App() {
  const [me, setMe] = useState<Whoami | null>(null);
  const [checking, setChecking] = useState(!!savedToken());
  const [why, setWhy] = useState("");
  const route = useRoute();

  useEffect(() => {
    const token = savedToken();
    if (!token) return;
    call<Whoami>("GET", "/api/v1/whoami").then(
      (m) => {
        setMe(m);
        setChecking(false);
      },
      (e: ApiError) => {
        if (e.status === 401) saveToken("");
        setWhy(e.message);
        setChecking(false);
      },
    );
  }, []);
  useEffect(
    () =>
      onUnauthorized(() => {
        saveToken("");
        setMe(null);
        setWhy("The server no longer accepts this token: sign in again.");
      }),
    [],
  );

  if (checking) return <main class="signin muted">Loading…</main>;
  if (!me) return <SignIn onSignedIn={(m) => (setWhy(""), setMe(m))} why={why} />;
  const current = route.path[0] === "deploys" && route.path[1] ? "deploys" : route.path[0] || "overview";
  return (
    <Me.Provider value={me}>
      <header class="top">
        <a class="brand" href="#/overview">
          <Logo /> Slipway
        </a>
        <nav>
          {pages.map(([p, label]) => (
            <a href={`#/${p}`} class={current === p || (p === "history" && current === "deploys") ? "active" : ""}>
              {label}
            </a>
          ))}
        </nav>
        <div
          class="who"
          title={`scope: ${me.envs.length ? me.envs.join(",") : "every env"}, ${me.apps.length ? me.apps.join(",") : "every app"}`}
        >
          <span class="who-name">{me.name}</span> <span class={`badge role-${me.role}`}>{me.role}</span>
          <button
            class="link"
            onClick={() => {
              saveToken("");
              setMe(null);
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      <main class="content">
        <Page />
      </main>
    </Me.Provider>
  );
}

render(<App />, document.getElementById("app")!);
