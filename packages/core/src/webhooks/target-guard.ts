/**
 * Server-side request forgery guard of webhook targets. A target must be http(s) without
 * credentials, and every address its name resolves to must be public unicast (not loopback,
 * private, link-local, unique-local, carrier-grade NAT, multicast, reserved, or a cloud metadata
 * address), unless it is inside an allow-listed CIDR (WEBHOOK_ALLOWED_CIDRS: the local stack and
 * tests allow 127.0.0.1). Plain http is accepted for allow-listed targets only.
 *
 * It runs at submission and again at each delivery, after resolution: the delivery then connects to
 * the address that was checked (transport.ts pins it), so DNS rebinding between the check and the
 * connect cannot point it elsewhere.
 */
import { lookup } from 'node:dns/promises';
import ipaddr from 'ipaddr.js';
import { DocorchError } from '../errors.js';

/** A resolved, vetted target: connect to `address`, present `url`'s host name (Host, SNI). */
export interface VettedTarget {
  url: URL;
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to its addresses (injected in tests). */
export type Resolver = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

/** The system resolver (every address, as the OS would). */
export const systemResolver: Resolver = (hostname) => lookup(hostname, { all: true, verbatim: true });

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/** Options of {@link WebhookTargetGuard}. */
export interface TargetGuardOptions {
  /** Comma-separated CIDRs allowed although not public (WEBHOOK_ALLOWED_CIDRS). @defaultValue none */
  allowedCidrs?: string;
  /** @defaultValue {@link systemResolver} */
  resolver?: Resolver;
  /** A name not resolved within this is refused (a slow resolver must not hold an upload). @defaultValue 3000 */
  resolveTimeoutMs?: number;
}

/** Thrown for a refused target: INVALID_REQUEST with the reason. */
function refused(reason: string): DocorchError {
  return new DocorchError('INVALID_REQUEST', `webhookUrl refused: ${reason}`, { details: { field: 'webhookUrl' } });
}

/** Checks webhook targets; see the module comment. */
export class WebhookTargetGuard {
  private readonly allowed: Cidr[];
  private readonly resolver: Resolver;
  private readonly resolveTimeoutMs: number;

  constructor(options: TargetGuardOptions = {}) {
    this.resolveTimeoutMs = options.resolveTimeoutMs ?? 3_000;
    this.allowed = (options.allowedCidrs ?? '')
      .split(',')
      .map((c) => c.trim())
      .filter(Boolean)
      .map((c) => (c.includes('/') ? ipaddr.parseCIDR(c) : ([ipaddr.parse(c), ipaddr.parse(c).kind() === 'ipv4' ? 32 : 128] as Cidr)));
    this.resolver = options.resolver ?? systemResolver;
  }

  /** Resolves `target` and checks every address; throws INVALID_REQUEST (why) when refused. */
  async vet(target: string | URL): Promise<VettedTarget> {
    let url: URL;
    try {
      url = new URL(target);
    } catch {
      throw refused('not a URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw refused('only http and https are allowed');
    if (url.username || url.password) throw refused('credentials in the URL are not allowed');
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    let addresses: Array<{ address: string; family: number }>;
    if (ipaddr.isValid(host)) {
      addresses = [{ address: host, family: ipaddr.parse(host).kind() === 'ipv4' ? 4 : 6 }];
    } else {
      let timer: NodeJS.Timeout | undefined;
      try {
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(Object.assign(new Error('resolution timed out'), { code: 'ETIMEOUT' })), this.resolveTimeoutMs);
        });
        addresses = await Promise.race([this.resolver(host), timeout]);
      } catch (err) {
        throw refused(`${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
      } finally {
        clearTimeout(timer);
      }
      if (addresses.length === 0) throw refused(`${host} does not resolve`);
    }
    let allAllowed = true;
    for (const { address } of addresses) {
      const reason = this.refusal(address);
      if (reason === 'allowed') continue;
      allAllowed = false;
      if (reason) throw refused(`${host} resolves to ${address}, a ${reason} address`);
    }
    if (url.protocol === 'http:' && !allAllowed) throw refused('plain http is allowed only for allow-listed targets; use https');
    const first = addresses[0] as { address: string; family: number };
    return { url, address: first.address, family: first.family === 6 ? 6 : 4 };
  }

  /** 'allowed' (allow-listed), undefined (public) or the kind of non-public range. */
  private refusal(address: string): string | undefined {
    let ip = ipaddr.parse(address);
    if (ip.kind() === 'ipv6' && (ip as ipaddr.IPv6).isIPv4MappedAddress()) ip = (ip as ipaddr.IPv6).toIPv4Address();
    for (const [net, bits] of this.allowed) {
      if (net.kind() === ip.kind() && ip.match([net, bits] as never)) return 'allowed';
    }
    const range = ip.range();
    return range === 'unicast' ? undefined : range;
  }
}
