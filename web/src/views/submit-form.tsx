/**
 * Submit a task: type, priority, playbook, inventory, free key/value payload, timeout and the
 * lost-task policy. Validation messages are the server's own field errors, shown by their fields.
 */
import { type FormEvent, useState } from "react";
import { TaskPriority } from "../../../gen/spage/core/common_pb.js";
import { api, describeError } from "../api.js";

interface Pair {
  key: string;
  value: string;
}

/** The submit form. */
export function SubmitForm() {
  const [type, setType] = useState("playbook");
  const [priority, setPriority] = useState(TaskPriority.NORMAL);
  const [playbook, setPlaybook] = useState("");
  const [inventory, setInventory] = useState("");
  const [pairs, setPairs] = useState<Pair[]>([]);
  const [timeout, setTimeoutSeconds] = useState("");
  const [onLost, setOnLost] = useState("fail");
  const [fields, setFields] = useState<Record<string, string>>({});
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setFields({});
    setError("");
    const payload: Record<string, string> = {};
    for (const p of pairs) if (p.key.trim() !== "") payload[p.key.trim()] = p.value;
    if (playbook.trim()) payload.playbook = playbook.trim();
    if (inventory.trim()) payload.inventory = inventory.trim();
    try {
      const r = await api.submitTask({
        type: type.trim(),
        priority,
        payload,
        timeoutSeconds: timeout === "" ? 0 : Number(timeout),
        onLost,
      });
      window.location.hash = `#/tasks/${encodeURIComponent(r.taskId)}`;
    } catch (err) {
      const d = describeError(err);
      setFields(d.fields);
      setError(d.message);
    } finally {
      setBusy(false);
    }
  };

  const fieldError = (name: string) =>
    Object.entries(fields)
      .filter(([f]) => f === name || f.startsWith(`${name}[`) || f.startsWith(`${name}.`))
      .map(([, d]) => d)
      .join("; ");
  const described = (name: string) =>
    fieldError(name) ? { "aria-invalid": true, "aria-describedby": `err-${name}` } : {};

  return (
    <section aria-labelledby="submit-title">
      <h1 id="submit-title">Submit a task</h1>
      <form className="submit" onSubmit={submit} noValidate>
        <label>
          Type
          <input name="type" value={type} onChange={(e) => setType(e.target.value)} {...described("type")} />
          <FieldError name="type" message={fieldError("type")} />
        </label>
        <label>
          Priority
          <select value={priority} onChange={(e) => setPriority(Number(e.target.value))}>
            <option value={TaskPriority.LOW}>low</option>
            <option value={TaskPriority.NORMAL}>normal</option>
            <option value={TaskPriority.HIGH}>high</option>
            <option value={TaskPriority.CRITICAL}>critical</option>
          </select>
        </label>
        <label>
          Playbook
          <input
            name="playbook"
            value={playbook}
            onChange={(e) => setPlaybook(e.target.value)}
            placeholder="site.yml"
          />
        </label>
        <label>
          Inventory
          <input
            name="inventory"
            value={inventory}
            onChange={(e) => setInventory(e.target.value)}
            placeholder="hosts.ini"
          />
        </label>
        <fieldset>
          <legend>Payload</legend>
          {pairs.map((p, i) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: rows have no identity but their place.
            <div className="pair" key={i}>
              <input
                aria-label={`Payload key ${i + 1}`}
                value={p.key}
                onChange={(e) =>
                  setPairs((ps) => ps.map((x, j) => (j === i ? { ...x, key: e.target.value } : x)))
                }
              />
              <input
                aria-label={`Payload value ${i + 1}`}
                value={p.value}
                onChange={(e) =>
                  setPairs((ps) => ps.map((x, j) => (j === i ? { ...x, value: e.target.value } : x)))
                }
              />
              <button type="button" onClick={() => setPairs((ps) => ps.filter((_, j) => j !== i))}>
                Remove
              </button>
            </div>
          ))}
          <button type="button" onClick={() => setPairs((ps) => [...ps, { key: "", value: "" }])}>
            Add key/value
          </button>
          <FieldError name="payload" message={fieldError("payload")} />
        </fieldset>
        <label>
          Timeout (seconds, empty for none)
          <input
            name="timeout"
            inputMode="numeric"
            value={timeout}
            onChange={(e) => setTimeoutSeconds(e.target.value)}
            {...described("timeout_seconds")}
          />
          <FieldError name="timeout_seconds" message={fieldError("timeout_seconds")} />
        </label>
        <label>
          If its daemon is lost
          <select value={onLost} onChange={(e) => setOnLost(e.target.value)} {...described("on_lost")}>
            <option value="fail">fail it</option>
            <option value="requeue">run it again</option>
          </select>
          <FieldError name="on_lost" message={fieldError("on_lost")} />
        </label>
        <button type="submit" disabled={busy}>
          {busy ? "Submitting…" : "Submit"}
        </button>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
      </form>
    </section>
  );
}

/** A field's error from the server, referenced by the field's aria-describedby. */
function FieldError({ name, message }: { name: string; message: string }) {
  if (!message) return null;
  return (
    <span id={`err-${name}`} className="field-error" role="alert">
      {message}
    </span>
  );
}
