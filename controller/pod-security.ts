// Experiment pods run untrusted-ish workloads next to the agent that measures them: least privilege
// by default (restricted Pod Security Standard where the image allows it).
import type { V1PodSecurityContext, V1SecurityContext } from '@kubernetes/client-node';

// fsGroup: the run's credentials Secret is mounted 0440 and root-owned; without a supplementary group
// the backend image's user (uid 10001) cannot read it and the agent exits 2 (seen on the real node).
export const POD_SECURITY_CONTEXT: V1PodSecurityContext = {
  seccompProfile: { type: 'RuntimeDefault' },
  fsGroup: 65532,
};

function restricted(): V1SecurityContext {
  return {
    allowPrivilegeEscalation: false,
    privileged: false,
    capabilities: { drop: ['ALL'] },
    seccompProfile: { type: 'RuntimeDefault' },
  };
}

/** The init container that copies the agent: the agent image runs as uid 65532. */
export function agentSecurityContext(): V1SecurityContext {
  return { ...restricted(), runAsNonRoot: true, readOnlyRootFilesystem: true };
}

/**
 * The backend container. `runAsNonRoot` only where the image has a non-root user (llem's pytorch and
 * vllm images): the kubelet refuses to start a root image under it rather than running it as another user.
 */
export function backendSecurityContext(runAsNonRoot: boolean): V1SecurityContext {
  return { ...restricted(), ...(runAsNonRoot ? { runAsNonRoot: true } : {}) };
}

/**
 * The kubelet replaces `$(NAME)` in command, args and env values with the container's variable NAME
 * (a secret's, too) and `$$` with `$`. Doubling every `$` makes any text reach the process as
 * written: `$(X)` arrives as `$(X)`, and `$$(X)` as `$$(X)` (escaping only `$(` would expand the latter).
 */
export function escapeKubeletExpansion(text: string): string {
  return text.replaceAll('$', '$$$$');
}
