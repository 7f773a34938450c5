/**
 * The bench's verdicts: every failed check prints a FAIL line at once and makes the run exit non-zero.
 */

const failures: string[] = [];

/** Records a failed check and prints it. */
export function fail(what: string): void {
  failures.push(what);
  process.stdout.write(`FAIL: ${what}\n`);
}

/** Records a failure unless `ok`. Returns `ok`. */
export function check(ok: boolean, what: string): boolean {
  if (!ok) fail(what);
  return ok;
}

/** Every failure recorded so far. */
export function failuresSoFar(): readonly string[] {
  return failures;
}

/** Progress line on stderr, so stdout holds the verdicts and the table. */
export function note(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}
