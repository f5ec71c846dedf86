/** One JSON object per line. Never pass tokens, secrets or the database password here. */
export type Logger = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export function jsonLogger(write: (line: string) => void): Logger {
  return (level, msg, fields) => {
    const rec: Record<string, unknown> = { t: new Date().toISOString(), level, msg, ...fields };
    if (fields?.err instanceof Error)
      rec.err = { name: fields.err.name, code: (fields.err as { code?: unknown }).code, message: redact(fields.err.message) };
    write(JSON.stringify(rec));
  };
}

/** Strips credentials from anything that looks like a connection URL. */
export function redact(s: string): string {
  return s.replace(/(postgres(?:ql)?:\/\/[^:/@\s]+:)[^@\s]*@/gi, '$1***@');
}
