/**
 * Sign in with an API key, exchanged through Authenticate for a session token, or through the
 * gateway's identity provider when it has one ("Sign in with <name>").
 */
import { type FormEvent, useEffect, useState } from "react";
import { api, describeError } from "../api.js";
import { setSession, signOutReason } from "../session.js";
import { type SingleSignOn, signInHref, singleSignOn, takeOverSignIn } from "../single-sign-on.js";

/** The sign-in form. */
export function SignIn() {
  const [key, setKey] = useState("");
  const [error, setError] = useState(signOutReason());
  const [busy, setBusy] = useState(false);
  const [sso, setSso] = useState<SingleSignOn>({ enabled: false });
  useEffect(() => {
    void singleSignOn().then(setSso);
    void takeOverSignIn().then((why) => why && setError(why));
  }, []);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError("");
    try {
      const r = await api.authenticate({ apiKey: key.trim(), clientId: "dashboard" });
      setSession({
        token: r.token,
        expiresAt: Number(r.expiresAt),
        permissions: Object.keys(r.permissions),
      });
    } catch (err) {
      setError(describeError(err).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="sign-in">
      <h1>Spage Gateway</h1>
      {sso.enabled && (
        <p className="sso">
          <a className="button" href={signInHref(location.hash)}>
            Sign in with {sso.name}
          </a>
        </p>
      )}
      <form onSubmit={submit} aria-label="Sign in">
        <label htmlFor="api-key">API key</label>
        <input
          id="api-key"
          type="password"
          autoComplete="off"
          placeholder="spk_…"
          value={key}
          onChange={(e) => setKey(e.target.value)}
          required
        />
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error && (
          <p role="alert" className="error">
            {error}
          </p>
        )}
        <p className="muted">The key is exchanged for a session token kept only in this tab.</p>
      </form>
    </main>
  );
}
