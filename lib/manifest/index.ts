// Loading EnergyExperiment manifests from files: hardened YAML, `extends:`, validation.
export { loadManifestFile, loadExperimentFile, validateManifestDocument } from './load.ts';
export type { LoadedExperiment, LoadOptions } from './load.ts';
export {
  parseYamlDocuments,
  MAX_NESTING_DEPTH,
  DEFAULT_YAML_LIMITS,
  DEFAULT_MAX_BYTES,
  DEFAULT_MAX_ALIAS_COUNT,
} from './yaml.ts';
export type { YamlLimits, YamlDocument, YamlParseResult } from './yaml.ts';
export { deepMerge, resolveExtends, MAX_EXTENDS_DEPTH, MAX_EXTENDS_FILES } from './extends.ts';
export type { ExtendsContext } from './extends.ts';
