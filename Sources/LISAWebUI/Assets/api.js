// LISA's public HTTP API, as the UI uses it. Every call carries the signed-in credential;
// every failure becomes an APIError with the server's own message (OpenAI's error shape).

export class APIError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The message a person should read for a failed response. */
async function errorFrom(response) {
  let message = `${response.status} ${response.statusText || 'error'}`;
  let code;
  try {
    const body = await response.json();
    if (body?.error?.message) message = body.error.message;
    code = body?.error?.code ?? body?.error?.type;
  } catch { /* not JSON: keep the status line */ }
  if (response.status === 429) message = `Too many requests: ${message}`;
  return new APIError(response.status, message, code);
}

export class LisaAPI {
  /** `credential()` returns the bearer token; `onUnauthorized()` runs on any 401. */
  constructor(credential, onUnauthorized = () => {}) {
    this.credential = credential;
    this.onUnauthorized = onUnauthorized;
  }

  async fetch(method, path, { json, form, signal } = {}) {
    const headers = { Accept: 'application/json' };
    const token = this.credential();
    if (token) headers.Authorization = `Bearer ${token}`;
    let body;
    if (json !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(json);
    } else if (form) {
      body = form;
    }
    let response;
    try {
      response = await fetch(apiURL(path), { method, headers, body, signal, cache: 'no-store' });
    } catch (error) {
      if (error.name === 'AbortError') throw error;
      throw new APIError(0, 'LISA cannot be reached. Check your connection and try again.', 'network');
    }
    if (!response.ok) {
      const error = await errorFrom(response);
      if (response.status === 401) this.onUnauthorized(error);
      throw error;
    }
    return response;
  }

  async call(method, path, options) {
    const response = await this.fetch(method, path, options);
    const type = response.headers.get('Content-Type') ?? '';
    return type.includes('json') ? response.json() : response.text();
  }

  get(path) { return this.call('GET', path); }
  post(path, json) { return this.call('POST', path, { json }); }
  put(path, json) { return this.call('PUT', path, { json }); }
  delete(path) { return this.call('DELETE', path); }

  /**
   * Streams a chat completion. `onEvent(chunk)` gets every parsed SSE data object; the
   * promise resolves when the stream ends with [DONE] and rejects with an APIError when it
   * ends with an error event (or breaks), or with an AbortError when `signal` fires.
   */
  async streamChat(request, signal, onEvent) {
    const response = await this.fetch('POST', '/v1/chat/completions', { json: { ...request, stream: true }, signal });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    let event = 'message';
    let done = false;
    while (!done) {
      const { value, done: finished } = await reader.read();
      if (finished) break;
      buffer += value;
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') { event = 'message'; continue; }
        if (line.startsWith('event:')) { event = line.slice(6).trim(); continue; }
        if (!line.startsWith('data:')) continue;
        const data = line.slice(5).trim();
        if (data === '[DONE]') { done = true; break; }
        let parsed;
        try { parsed = JSON.parse(data); } catch { continue; }
        if (event === 'error' || parsed.error) {
          const error = parsed.error ?? parsed;
          throw new APIError(502, error.message ?? 'The model stream failed.', error.code);
        }
        onEvent(parsed);
      }
    }
    if (!done) throw new APIError(502, 'The answer was cut off: the stream ended without finishing.', 'stream_incomplete');
  }
}

/**
 * The URL of an API path, relative to the page: `/v1/models` from a page at
 * `https://host/lisa/` is `https://host/lisa/v1/models`, so LISA can sit behind a proxy
 * that serves it under a path prefix.
 */
export function apiURL(path) {
  return new URL(path.replace(/^\//, ''), document.baseURI).toString();
}

/** `/path/{a}` with each argument URL-encoded. */
export function path(strings, ...values) {
  return strings.reduce((result, part, index) => result + part + (index < values.length ? encodeURIComponent(values[index]) : ''), '');
}
