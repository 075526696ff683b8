/**
 * Request framing rules for the loopback HTTP listener, applied before any route runs. uWebSockets.js
 * parses HTTP itself and is lenient where request smuggling lives: with two Content-Length headers the
 * first wins, `Transfer-Encoding: gzip, chunked` is read as chunked, and header blocks are accepted up to
 * its own buffer size. Every header line is visible through `req.forEach`, so the rules are checked here:
 *   - more than one Content-Length, or one that is not plain digits → 400;
 *   - Transfer-Encoding other than exactly one `chunked` → 501 (one we do not implement);
 *   - more than MAX_HEADER_LINES header lines or MAX_HEADER_BYTES of them → 431.
 * The refusal closes the connection: after an ambiguous frame nothing later on it can be trusted. When
 * more bytes follow the refused request in the same read (a smuggled request), the connection is closed
 * without an answer and nothing after it is dispatched.
 * uWS's own limits stay below ours: a header block over ~50 lines never reaches JS (uWS answers nothing and
 * drops the connection after its 10 s idle timeout), and one near 1 MB is closed at once.
 */

/** Header lines a request may carry (uWS cannot hand over more than 50). */
export const MAX_HEADER_LINES = 40;
/** Total bytes of header names and values. */
export const MAX_HEADER_BYTES = 16 * 1024;

export interface FramingError {
  readonly status: 400 | 431 | 501;
  readonly message: string;
}

/** Check the header lines of one request (lower-cased names, as uWS gives them). */
export function checkFraming(headers: readonly (readonly [string, string])[]): FramingError | undefined {
  let bytes = 0;
  const lengths: string[] = [];
  const encodings: string[] = [];
  for (const [name, value] of headers) {
    bytes += name.length + value.length;
    if (name === 'content-length') lengths.push(value);
    else if (name === 'transfer-encoding') encodings.push(value);
  }
  if (headers.length > MAX_HEADER_LINES || bytes > MAX_HEADER_BYTES) {
    return {
      status: 431,
      message: `request headers exceed ${MAX_HEADER_LINES} lines or ${MAX_HEADER_BYTES} bytes`,
    };
  }
  if (lengths.length > 1) return { status: 400, message: 'more than one Content-Length header' };
  if (lengths.length === 1 && !/^\d{1,15}$/.test(lengths[0]!.trim())) {
    return { status: 400, message: 'Content-Length must be a decimal number' };
  }
  if (encodings.length > 0) {
    if (encodings.length > 1 || encodings[0]!.trim().toLowerCase() !== 'chunked') {
      return { status: 501, message: 'only "Transfer-Encoding: chunked" is supported' };
    }
    if (lengths.length > 0) {
      return { status: 400, message: 'Content-Length and Transfer-Encoding must not both be sent' };
    }
  }
  return undefined;
}
