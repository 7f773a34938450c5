/**
 * A readable difference between the two gateways' normalised answers: both rendered as JSON with
 * sorted keys (key order carries no meaning in either headers or JSON bodies), then a line diff
 * (longest common subsequence) marking what only one side sent.
 */

/** Renders `a` (fast path) against `b` (Connect's handler) as a line diff with a legend. */
export function describeDifference(a: unknown, b: unknown): string {
  const left = render(a);
  const right = render(b);
  const lines = lineDiff(right, left).map(([mark, line]) => `${mark} ${line}`);
  return ["--- connect only (--no-fast-path)", "+++ fast path", ...lines].join("\n");
}

function render(value: unknown): string[] {
  return JSON.stringify(sortKeys(value), null, 2).split("\n");
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
  );
}

/** Lines of `from` and `to` marked " " (both), "-" (only `from`) or "+" (only `to`). */
function lineDiff(from: readonly string[], to: readonly string[]): [string, string][] {
  // lcs[i][j]: length of the longest common subsequence of from[i..] and to[j..].
  const lcs = Array.from({ length: from.length + 1 }, () => new Array<number>(to.length + 1).fill(0));
  for (let i = from.length - 1; i >= 0; i--) {
    for (let j = to.length - 1; j >= 0; j--) {
      const row = lcs[i] as number[];
      row[j] =
        from[i] === to[j]
          ? ((lcs[i + 1] as number[])[j + 1] as number) + 1
          : Math.max((lcs[i + 1] as number[])[j] as number, row[j + 1] as number);
    }
  }
  const out: [string, string][] = [];
  let i = 0;
  let j = 0;
  while (i < from.length || j < to.length) {
    const down = i < from.length ? ((lcs[i + 1] as number[])[j] as number) : -1;
    const right = j < to.length ? ((lcs[i] as number[])[j + 1] as number) : -1;
    if (i < from.length && j < to.length && from[i] === to[j]) {
      out.push([" ", from[i] as string]);
      i++;
      j++;
    } else if (j >= to.length || (i < from.length && down >= right)) {
      out.push(["-", from[i] as string]);
      i++;
    } else {
      out.push(["+", to[j] as string]);
      j++;
    }
  }
  return out;
}
