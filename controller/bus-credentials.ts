// Per-run bus credentials (ADR 0011): the controller signs a NATS user JWT that may publish only to
// one run's subjects and hands it to that run's pods in a Secret it creates (owned by the
// experiment, so it goes when the experiment goes). The controller never reads Secrets: create only.
import type { V1Secret, V1EnvVar, V1Volume, V1VolumeMount } from '@kubernetes/client-node';
import { API_VERSION, KIND } from '../api/spec.ts';
import { AGENT_CREDS_KEY, type BusIssuer } from '../lib/bus/identity.ts';
import { LABEL_EXPERIMENT_UID, LABEL_RUN } from './kube.ts';
import { labelValue, type ExperimentRef } from './pods.ts';

const MOUNT_DIR = '/var/run/llem/bus';
const VOLUME = 'llem-bus-identity';

export function busSecretName(experiment: ExperimentRef, runId: string): string {
  const base = `${experiment.name.slice(0, 24)}-${experiment.uid.slice(0, 8)}-${runId}`.toLowerCase();
  return `${base
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 240)
    .replace(/^-+|-+$/g, '')}-bus`;
}

export function busCredentialSecret(issuer: BusIssuer, experiment: ExperimentRef, runId: string): V1Secret {
  const creds = issuer.agentCreds({ namespace: experiment.namespace, experimentUid: experiment.uid, runId });
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    type: 'Opaque',
    metadata: {
      name: busSecretName(experiment, runId),
      namespace: experiment.namespace,
      labels: {
        [LABEL_EXPERIMENT_UID]: labelValue(experiment.uid),
        [LABEL_RUN]: labelValue(runId),
        'app.kubernetes.io/managed-by': 'llem-controller',
        'app.kubernetes.io/component': 'bus-identity',
      },
      ownerReferences: [
        {
          apiVersion: API_VERSION,
          kind: KIND,
          name: experiment.name,
          uid: experiment.uid,
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    stringData: { [AGENT_CREDS_KEY]: creds },
  };
}

/** What a run's pod needs to use its credentials: the Secret as a read-only file, and the env naming it. */
export function busIdentityMount(
  experiment: ExperimentRef,
  runId: string,
): { volume: V1Volume; mount: V1VolumeMount; env: V1EnvVar[] } {
  return {
    volume: {
      name: VOLUME,
      secret: {
        secretName: busSecretName(experiment, runId),
        defaultMode: 0o440,
        items: [{ key: AGENT_CREDS_KEY, path: AGENT_CREDS_KEY }],
      },
    },
    mount: { name: VOLUME, mountPath: MOUNT_DIR, readOnly: true },
    env: [{ name: 'LLEM_NATS_CREDS_FILE', value: `${MOUNT_DIR}/${AGENT_CREDS_KEY}` }],
  };
}
