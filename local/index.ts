// The local runtime behind `llem run` and `llem results`.
export { runLocalExperiment, defaultOutDir, type LocalRunOptions, type LocalRunOutcome } from './experiment.ts';
export { ConsoleProgress, finishText, type ProgressEvent, type ProgressSink, type LiveSource } from './progress.ts';
export { RESULTS_SCHEMA_VERSION, type ResultsSummary, type RunFile } from './results.ts';
export { readResultsDirectory, compareResults, type ResultsDocument } from './results-read.ts';
export { openExport, type StreamedExport } from './results-export.ts';
export { parsePassEnv, LOCAL_BACKEND_BASE_ENV } from './backend-env.ts';
