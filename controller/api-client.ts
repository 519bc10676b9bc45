// API clients that reuse their connections. @kubernetes/client-node 2.x builds a new undici Agent in
// KubeConfig.applySecurityAuthentication for every request, so every API call opened a fresh TLS
// connection (a new OpenSSL context on both sides, never reused): measured in bench/controller.ts
// at ~40% of the controller's CPU under load, seconds of reconcile latency, and hundreds of MB of
// native memory that glibc kept after the requests ended. Here the KubeConfig still authenticates
// every request (headers, rotated tokens) but the request goes through one shared keep-alive Agent.
import {
  createConfiguration,
  ServerConfiguration,
  setHeaderMiddleware,
  type Configuration,
  type KubeConfig,
  type RequestContext,
  type SecurityAuthentication,
} from '@kubernetes/client-node';

type Dispatcher = NonNullable<ReturnType<RequestContext['getDispatcher']>>;

/** The shared Agent is replaced this often, so rotated client certificates or CAs are picked up. */
const REFRESH_MS = 10 * 60 * 1000;

export class SharedConnectionAuth implements SecurityAuthentication {
  private shared: { dispatcher: Dispatcher; sinceMs: number } | undefined;
  /** Requests that reused the shared Agent instead of the one made for them (tests). */
  reused = 0;

  constructor(
    private readonly kc: KubeConfig,
    private readonly now: () => number = Date.now,
  ) {}

  getName(): string {
    return 'kubeconfig authentication, shared connections';
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    await this.kc.applySecurityAuthentication(context);
    const made = context.getDispatcher();
    // No TLS options (plain HTTP, or NODE_EXTRA_CA_CERTS only): fetch's global dispatcher already pools.
    if (made === undefined) return;
    const now = this.now();
    if (this.shared === undefined || now - this.shared.sinceMs > REFRESH_MS) {
      const old = this.shared?.dispatcher;
      this.shared = { dispatcher: made, sinceMs: now };
      // close() lets the requests in flight on the old Agent finish before its sockets go.
      if (old !== undefined) void old.close().catch(() => undefined);
      return;
    }
    context.setDispatcher(this.shared.dispatcher);
    this.reused += 1;
    // The Agent made for this request never connected: nothing to close but its (empty) pool.
    void made.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    const d = this.shared?.dispatcher;
    this.shared = undefined;
    await d?.close();
  }
}

const auths = new WeakMap<KubeConfig, SharedConnectionAuth>();

/** One SharedConnectionAuth per KubeConfig: every client made from it shares its connections. */
export function sharedAuth(kc: KubeConfig): SharedConnectionAuth {
  let auth = auths.get(kc);
  if (auth === undefined) {
    auth = new SharedConnectionAuth(kc);
    auths.set(kc, auth);
  }
  return auth;
}

/** Like `kc.makeApiClient(Api)`, with the connections of every client of `kc` shared. */
export function makeApiClient<T>(kc: KubeConfig, Api: new (config: Configuration) => T): T {
  const cluster = kc.getCurrentCluster();
  if (cluster === null) throw new Error('No active cluster in the kubeconfig');
  const config = createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: sharedAuth(kc) },
    middleware: [setHeaderMiddleware('User-Agent', 'llem-controller')],
  });
  return new Api(config);
}
