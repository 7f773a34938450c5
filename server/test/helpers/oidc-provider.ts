/**
 * A real OpenID provider (`oidc-provider`) in the test process, on 127.0.0.1: the gateway's client
 * registered with its redirect URI, people with e-mails and groups, the provider's login and
 * consent pages (its development interactions: any password signs the named person in), and
 * signing keys the test holds too, so it can mint access tokens the provider's JWKS vouches for, or
 * forge ones it does not. `rotateKeys` swaps in a provider with new keys on the same address.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import Provider from "oidc-provider";

type SigningSecret = Awaited<ReturnType<typeof generateKeyPair>>["privateKey"];

/** A person the provider knows. */
export interface TestPerson {
  readonly email: string;
  readonly name: string;
  readonly groups: readonly string[];
}

/** The running provider. */
export interface TestOidcProvider {
  readonly issuer: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** Signs an access token with the provider's current key (claims override the defaults). */
  accessToken(subject: string, claims?: JWTPayload & { expiresIn?: string | number }): Promise<string>;
  /** Signs a token with a key the provider never published, under the current key's id. */
  forgedToken(subject: string, claims?: JWTPayload): Promise<string>;
  /** Replaces the signing keys: the JWKS now publishes only a new key. Returns its id. */
  rotateKeys(): Promise<string>;
  /** Requests the provider answered for its JWKS so far. */
  readonly jwksFetches: number;
  close(): Promise<void>;
}

interface SigningKey {
  readonly kid: string;
  readonly privateKey: SigningSecret;
  readonly privateJwk: JWK;
}

let keyCounter = 0;
async function newKey(): Promise<SigningKey> {
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const kid = `test-key-${++keyCounter}`;
  return { kid, privateKey, privateJwk: { ...(await exportJWK(privateKey)), kid, alg: "RS256", use: "sig" } };
}

/** Starts the provider; `redirectUris` are the gateway's callback URLs. */
export async function startOidcProvider(opts: {
  readonly redirectUris: readonly string[];
  readonly people: Readonly<Record<string, TestPerson>>;
}): Promise<TestOidcProvider> {
  const server: Server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const clientId = "spage-gateway";
  const clientSecret = "test-client-secret-that-is-long-enough";
  let jwksFetches = 0;
  let key = await newKey();
  let handler: ReturnType<Provider["callback"]>;

  const build = (k: SigningKey) => {
    const provider = new Provider(issuer, {
      clients: [
        {
          client_id: clientId,
          client_secret: clientSecret,
          redirect_uris: [...opts.redirectUris],
          grant_types: ["authorization_code"],
          response_types: ["code"],
        },
      ],
      jwks: { keys: [k.privateJwk] },
      cookies: { keys: ["test-cookie-key-one", "test-cookie-key-two"] },
      pkce: { required: () => true },
      claims: { openid: ["sub"], email: ["email", "email_verified"], profile: ["name"], groups: ["groups"] },
      scopes: ["openid", "email", "profile", "groups"],
      async findAccount(_ctx, id) {
        const person = opts.people[id];
        if (!person) return undefined;
        return {
          accountId: id,
          async claims() {
            return {
              sub: id,
              email: person.email,
              email_verified: true,
              name: person.name,
              groups: [...person.groups],
            };
          },
        };
      },
    });
    return provider.callback();
  };
  handler = build(key);
  server.on("request", (req, res) => {
    if (req.url?.startsWith("/jwks")) jwksFetches++;
    handler(req, res);
  });

  const sign = (
    privateKey: SigningSecret,
    kid: string,
    subject: string,
    claims: JWTPayload & { expiresIn?: string | number } = {},
  ) => {
    const { expiresIn, ...rest } = claims;
    return new SignJWT({
      aud: clientId,
      email: opts.people[subject]?.email,
      groups: opts.people[subject]?.groups,
      ...rest,
    })
      .setProtectedHeader({ alg: "RS256", kid, typ: "at+jwt" })
      .setIssuer(typeof rest.iss === "string" ? rest.iss : issuer)
      .setSubject(subject)
      .setIssuedAt()
      .setExpirationTime(expiresIn ?? "10m")
      .sign(privateKey);
  };

  return {
    issuer,
    clientId,
    clientSecret,
    accessToken: (subject, claims) => sign(key.privateKey, key.kid, subject, claims),
    async forgedToken(subject, claims) {
      const other = await newKey();
      return sign(other.privateKey, key.kid, subject, claims);
    },
    async rotateKeys() {
      key = await newKey();
      handler = build(key);
      return key.kid;
    },
    get jwksFetches() {
      return jwksFetches;
    },
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
