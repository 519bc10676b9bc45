// The kubelet's `$(VAR)` expansion of container command, args and env values
// (k8s.io/kubernetes third_party/forked/golang/expansion): `$$` -> `$`, `$(NAME)` -> NAME's value
// when NAME is defined, anything else as written. Test doubles that run pods apply it as a node would.

export function kubeletExpand(text: string, vars: Readonly<Record<string, string>>): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] ?? '';
    const next = text[i + 1];
    if (c !== '$' || next === undefined) {
      out += c;
    } else if (next === '$') {
      out += '$';
      i++;
    } else if (next === '(') {
      const end = text.indexOf(')', i + 2);
      if (end < 0) return out + text.slice(i);
      const name = text.slice(i + 2, end);
      out += vars[name] ?? `$(${name})`;
      i = end;
    } else {
      out += '$';
    }
  }
  return out;
}

/** A container's env as the process sees it: each value expanded with the variables defined before it. */
export function expandContainerEnv(
  env: readonly { name: string; value?: string | undefined }[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of env) if (e.value !== undefined) out[e.name] = kubeletExpand(e.value, out);
  return out;
}
