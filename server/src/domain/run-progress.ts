/**
 * How a runner's progress updates become a per-host summary (like Ansible's recap) and an overall
 * progress figure. A Spage core sends, per Ansible task and host, a start update (progress 0, status
 * "running"), then a done update (progress 100, or -1 when it failed) or a skipped update.
 */
import { create } from "@bufbuild/protobuf";
import { type HostSummary, HostSummarySchema } from "../../../gen/spage/core/common_pb.js";

/** What one update says about one step on one host. */
export type StepOutcome = "started" | "ok" | "failed" | "skipped" | "note";

/** The facts of one update. */
export interface StepReport {
  readonly host: string;
  readonly task: string;
  readonly outcome: StepOutcome;
  readonly error: string;
}

/** How the whole run ended, when an update says so (metadata `run_status`). */
export type RunEnd = { readonly status: "completed" | "failed"; readonly error: string } | undefined;

/** Reads the step facts from an update's progress and metadata. */
export function classifyUpdate(progress: number, metadata: Readonly<Record<string, string>>): StepReport {
  const status = (metadata.status ?? "").toLowerCase();
  let outcome: StepOutcome;
  if (status === "running" || status === "started") outcome = "started";
  else if (status === "skipped") outcome = "skipped";
  else if (status === "failed" || status === "error" || status === "unreachable") outcome = "failed";
  else if (status === "completed" || status === "ok" || status === "changed" || status === "success")
    outcome = "ok";
  else if (progress < 0) outcome = "failed";
  else if (progress >= 100) outcome = "ok";
  else if (metadata.host) outcome = "started";
  else outcome = "note";
  return { host: metadata.host ?? "", task: metadata.task ?? "", outcome, error: metadata.error ?? "" };
}

/** Reads a run-end marker (`run_status` completed/failed) from an update's metadata. */
export function runEndOf(metadata: Readonly<Record<string, string>>): RunEnd {
  const s = (metadata.run_status ?? "").toLowerCase();
  if (s === "completed" || s === "failed") return { status: s, error: metadata.error ?? "" };
  return undefined;
}

/**
 * The error of the run itself that an update reports: a failure with no host (a Spage core's
 * "Error in level <n>: <err>"); undefined for any other update.
 */
export function runErrorOf(step: StepReport, message: string): string | undefined {
  if (step.outcome !== "failed" || step.host !== "") return undefined;
  if (step.error === "" || message.includes(step.error)) return message || "the run failed";
  return message ? `${message}: ${step.error}` : step.error;
}

/** Applies one step report to the host summaries; returns a new list sorted by host. */
export function applyStep(hosts: readonly HostSummary[], step: StepReport): HostSummary[] {
  if (step.host === "" || step.outcome === "note") return [...hosts];
  const byHost = new Map(hosts.map((h) => [h.host, create(HostSummarySchema, { ...h })]));
  const h = byHost.get(step.host) ?? create(HostSummarySchema, { host: step.host });
  const finish = () => {
    if (h.running > 0) h.running--;
    if (h.running === 0) h.currentTask = "";
  };
  switch (step.outcome) {
    case "started":
      h.running++;
      h.currentTask = step.task;
      break;
    case "ok":
      finish();
      h.ok++;
      break;
    case "failed":
      finish();
      h.failed++;
      h.lastError = step.error || "failed";
      h.failedTask = step.task;
      break;
    case "skipped":
      // A skip may come with or without a start update before it.
      finish();
      h.skipped++;
      break;
  }
  byHost.set(h.host, h);
  return [...byHost.values()].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
}

/**
 * Overall progress in percent: finished steps over steps seen so far, across hosts. The gateway does
 * not know how many steps a playbook has, so a running task stays below 100 until it ends.
 */
export function overallProgress(hosts: readonly HostSummary[]): number {
  let done = 0;
  let running = 0;
  for (const h of hosts) {
    done += h.ok + h.failed + h.skipped;
    running += h.running;
  }
  if (done + running === 0) return 0;
  return Math.min(99, Math.round((1000 * done) / (done + running)) / 10);
}
