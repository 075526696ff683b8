/**
 * Preloaded into Node children of `aivault run` (`NODE_OPTIONS=--import <this file>`): before Node 24,
 * the built-in `fetch` ignores HTTPS_PROXY (and NODE_USE_ENV_PROXY does not exist), so an unchanged Node
 * agent would go around the proxy. This installs undici's EnvHttpProxyAgent (HTTPS_PROXY + NO_PROXY) as
 * the global dispatcher, which the built-in fetch uses. Runs in the child's main thread; no-op when no
 * proxy is set or when Node honours NODE_USE_ENV_PROXY itself. Never reads or holds a key.
 */
import { EnvHttpProxyAgent, setGlobalDispatcher } from 'undici';

const major = Number(process.versions.node.split('.')[0]);
const proxy = process.env.HTTPS_PROXY ?? process.env.https_proxy;
if (proxy && !(major >= 24 && process.env.NODE_USE_ENV_PROXY === '1')) {
  setGlobalDispatcher(new EnvHttpProxyAgent());
}
