/**
 * The dashboard shell: sign-in gate, header (live counts, chart, connection indicator), navigation,
 * and the view of the current hash route. The live stream starts once signed in, from the
 * sequence the first listing reflects, so "read, then watch" is gap-free.
 */
import { useEffect, useState } from "react";
import { api } from "./api.js";
import { live } from "./live-events.js";
import { useRoute, useRouteQuery } from "./route.js";
import { clearSession, currentSession, onSession, type Session } from "./session.js";
import { ConnectionIndicator } from "./views/connection-indicator.js";
import { DaemonsView } from "./views/daemons-view.js";
import { HeaderStats } from "./views/header-stats.js";
import { SignIn } from "./views/sign-in.js";
import { SubmitForm } from "./views/submit-form.js";
import { TaskDetail } from "./views/task-detail.js";
import { TaskList } from "./views/task-list.js";

/** The whole app. */
export function App() {
  const [session, setSession] = useState<Session | undefined>(currentSession);
  useEffect(() => onSession(setSession), []);
  if (!session) return <SignIn />;
  return <SignedIn />;
}

function SignedIn() {
  const route = useRoute();
  const workflow = useRouteQuery().get("workflow") ?? "";
  useEffect(() => {
    const abort = new AbortController();
    // The event log position to follow from: what a listing reflects right now (retried with
    // backoff, never guessed: starting from 0 would replay the whole log). The views load their
    // own data meanwhile; one whose data is older than this start reloads (see TaskList).
    (async () => {
      let delay = 250;
      while (!abort.signal.aborted) {
        try {
          const r = await api.listTasks({ limit: 1 }, { signal: abort.signal });
          if (!abort.signal.aborted) live.start(r.sequence);
          return;
        } catch {
          await new Promise((r) => setTimeout(r, delay * (0.75 + Math.random() * 0.5)));
          delay = Math.min(delay * 2, 10_000);
        }
      }
    })();
    return () => {
      abort.abort();
      live.stop();
    };
  }, []);
  const [view, id] = route;
  const person = currentSession()?.person;
  const signOut = async () => {
    const s = currentSession();
    if (s) await api.revokeToken({ token: s.token }).catch(() => {});
    clearSession();
  };
  return (
    <div className="app">
      <header className="top">
        <a className="brand" href="#/tasks">
          Spage Gateway
        </a>
        <nav aria-label="Views">
          <a href="#/tasks" aria-current={view === undefined || view === "tasks" ? "page" : undefined}>
            Tasks
          </a>
          <a href="#/submit" aria-current={view === "submit" ? "page" : undefined}>
            Submit
          </a>
          <a href="#/daemons" aria-current={view === "daemons" ? "page" : undefined}>
            Daemons
          </a>
        </nav>
        <ConnectionIndicator />
        {person && (
          <span className="who" data-testid="signed-in-as" title={person.email}>
            {person.name || person.email}
          </span>
        )}
        <button type="button" className="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      <HeaderStats />
      <main>
        {view === "submit" ? (
          <SubmitForm />
        ) : view === "daemons" ? (
          <DaemonsView />
        ) : view === "tasks" && id ? (
          <TaskDetail taskId={id} />
        ) : (
          <TaskList workflow={workflow} />
        )}
      </main>
    </div>
  );
}
