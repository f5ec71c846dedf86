// A browser's cookie store for tests, reduced to name → value (Max-Age=0 or an empty value deletes).
export class CookieJar {
  readonly #cookies = new Map<string, string>();
  /** The raw Set-Cookie lines of the last response taken. */
  lastSetCookie: string[] = [];

  /** `defaultName` is what `get()` reads when no name is given. */
  constructor(readonly defaultName = '__Host-session') {}

  take(res: { headers: { getSetCookie(): string[] } }): this {
    this.lastSetCookie = res.headers.getSetCookie();
    for (const line of this.lastSetCookie) {
      const [pair = '', ...attributes] = line.split(/;\s*/);
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      if (value === '' || attributes.some((a) => /^max-age=0$/i.test(a))) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
    return this;
  }

  get(name = this.defaultName): string | undefined {
    return this.#cookies.get(name);
  }

  set(name: string, value: string): this {
    this.#cookies.set(name, value);
    return this;
  }

  header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}
