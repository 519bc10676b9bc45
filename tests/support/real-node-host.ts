// What the real node may change on the host, read before `dev-cluster.sh up` and after `down`, so a test
// can prove `down` put everything back: kernel settings, packet filtering, network devices, routes and
// namespaces, mounts, cgroups, the directories the kubelet uses whatever its --root-dir says, and the
// processes of the node's components and containers.
import { readdirSync, readlinkSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from './real-node.ts';

export type HostState = Record<string, string[]>;

/**
 * Kernel settings that change by themselves (counters, entropy, load-adjusted limits): never compared.
 * Everything else under /proc/sys is, including settings nobody thought the node would touch.
 */
const VOLATILE_SYSCTL =
  /^(kernel\.random\.|kernel\.ns_last_pid|kernel\.pty\.nr|kernel\.perf_event_max_sample_rate|fs\.(dentry-state|file-nr|inode-nr|inode-state|aio-nr|quota\.)|net\.netfilter\.nf_conntrack_count|fs\.binfmt_misc\.)/;

/** Per-interface settings: they come and go with the pods' veths and the bridge. */
const PER_INTERFACE = /^net\.ipv[46]\.(conf|neigh)\.([^.]+)\./;

async function lines(cmd: string, args: string[]): Promise<string[]> {
  const r = await sh(cmd, args);
  return r.code === 0 ? r.stdout.split('\n').filter((l) => l.trim() !== '') : [`(${cmd} failed: ${r.code})`];
}

async function sysctls(): Promise<string[]> {
  const all = await lines('sysctl', ['-a']);
  const ifaces = new Set(readdirSync('/sys/class/net'));
  return all.filter((l) => {
    const key = l.split(' = ')[0] ?? '';
    if (VOLATILE_SYSCTL.test(key)) return false;
    const m = PER_INTERFACE.exec(key);
    // An interface's keys are compared only while it exists; its absence shows in `links`.
    return m === null || ['all', 'default'].includes(m[2] ?? '') || ifaces.has(m[2] ?? '');
  });
}

/** Rules without packet counters (traffic changes those, not the node). */
async function packetFilter(): Promise<string[]> {
  const out: string[] = [];
  for (const save of ['iptables-save', 'ip6tables-save'])
    for (const l of await lines(save, []))
      if (!l.startsWith('#')) out.push(`${save}: ${l.replace(/\[\d+:\d+\]/g, '')}`);
  for (const l of await lines('nft', ['list', 'ruleset']))
    out.push(`nft: ${l.replace(/counter packets \d+ bytes \d+/g, 'counter').trim()}`);
  return out;
}

/**
 * Processes of the node: whatever names the node's directory (every component's configuration, data
 * or socket lives there), its scripts' loops, containerd shims and runc, anything inside a pod cgroup.
 * Not matched by executable: other tests run the same cached etcd and kube-apiserver binaries.
 */
function nodeProcesses(runDir: string): string[] {
  const out: string[] = [];
  const names = new Set(['containerd', 'containerd-shim-runc-v2', 'runc', 'dnsmasq']);
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const exe = readlinkSync(`/proc/${pid}/exe`);
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      const cgroup = readFileSync(`/proc/${pid}/cgroup`, 'utf8');
      const base = exe.split('/').pop() ?? '';
      const ours = cmdline.includes(runDir) || /dev-cluster\.sh _/.test(cmdline) || cgroup.includes('/kubepods');
      if (ours || names.has(base)) out.push(`${exe} ${cmdline.slice(0, 200)}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return out.sort();
}

function podCgroups(): string[] {
  const out: string[] = [];
  for (const c of readdirSync('/sys/fs/cgroup')) if (existsSync(join('/sys/fs/cgroup', c, 'kubepods'))) out.push(c);
  if (existsSync('/sys/fs/cgroup/kubepods')) out.push('(unified)');
  return out;
}

export async function hostState(runDir: string): Promise<HostState> {
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m !== '')
    .sort();
  const paths = ['/var/lib/kubelet', '/var/lib/kubelet/device-plugins', '/var/log/containers', '/var/log/pods'];
  return {
    sysctls: await sysctls(),
    packetFilter: await packetFilter(),
    links: (await lines('ip', ['-o', 'link', 'show'])).map((l) => l.split(':')[1]?.trim().split('@')[0] ?? l),
    addresses: (await lines('ip', ['-o', 'addr', 'show'])).map((l) => l.replace(/valid_lft.*$/, '').trim()),
    routes: [...(await lines('ip', ['route', 'show', 'table', 'all'])), ...(await lines('ip', ['rule']))],
    netns: existsSync('/run/netns') ? readdirSync('/run/netns').sort() : [],
    mounts,
    podCgroups: podCgroups(),
    paths: paths.map((p) => `${p}: ${existsSync(p) ? readdirSync(p).length : 'absent'}`),
    processes: nodeProcesses(runDir),
  };
}

/** What differs, one line per item present on one side only. */
export function hostDiff(before: HostState, after: HostState): string[] {
  const out: string[] = [];
  for (const key of Object.keys(before)) {
    const a = new Set(before[key]);
    const b = new Set(after[key]);
    for (const x of a) if (!b.has(x)) out.push(`${key}: lost ${x}`);
    for (const x of b) if (!a.has(x)) out.push(`${key}: left ${x}`);
  }
  return out;
}
