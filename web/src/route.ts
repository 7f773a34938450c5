/**
 * The hash route: a path (#/tasks/<id>) and, for the task list, a query (#/tasks?workflow=<id>).
 * Links navigate by hash; a filter typed into a form replaces the route in place.
 */
import { useSyncExternalStore } from "react";

// Routes replaced in place (replaceRoute) fire no hashchange; this event tells useRoute.
const routeReplaced = "spage:route";

function useHash(): string {
  return useSyncExternalStore(
    (cb) => {
      window.addEventListener("hashchange", cb);
      window.addEventListener(routeReplaced, cb);
      return () => {
        window.removeEventListener("hashchange", cb);
        window.removeEventListener(routeReplaced, cb);
      };
    },
    () => window.location.hash,
  );
}

/** The hash route's path, e.g. ["tasks", "3f0c…"] for #/tasks/3f0c…. */
export function useRoute(): string[] {
  const path = useHash().replace(/^#\/?/, "").split("?")[0] ?? "";
  return path.split("/").filter(Boolean).map(decodeURIComponent);
}

/** The hash route's query, e.g. workflow=wf-1 for #/tasks?workflow=wf-1. */
export function useRouteQuery(): URLSearchParams {
  const hash = useHash();
  const i = hash.indexOf("?");
  return new URLSearchParams(i < 0 ? "" : hash.slice(i + 1));
}

/**
 * Replaces the hash route without a history entry (a filter typed into a form, not a navigation),
 * and tells useRoute.
 */
export function replaceRoute(hash: string): void {
  if (window.location.hash === hash) return;
  history.replaceState(history.state, "", hash);
  window.dispatchEvent(new Event(routeReplaced));
}

/** The hash of the task list, filtered to `workflow` when given. */
export function tasksHref(workflow = ""): string {
  return workflow ? `#/tasks?workflow=${encodeURIComponent(workflow)}` : "#/tasks";
}
