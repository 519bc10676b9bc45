// A fake libnvidia-ml.so for tests on machines without a GPU: N devices (N = entries of LLEM_FAKE_NVML_WATTS,
// e.g. "150,450"), device i with UUID GPU-fake-nvml-000i and constant board power watts[i]. Each device's
// total-energy counter is watts x wall-clock time, stepping every 100 ms as an H100's does, and is the same in
// every process that loads the library (it is a function of CLOCK_REALTIME), so the agent's readings can be
// checked against what each device "drew". Only what llem's NVML binding needs is here; the rest is absent,
// which the binding reports as NVML_ERROR_FUNCTION_NOT_FOUND, as an old driver would.
// Build: cc -shared -fPIC -O2 -o libfake-nvml.so fake-libnvml.c
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_DEVICES 16
#define OK 0
#define ERR_INVALID_ARGUMENT 2
#define ERR_NOT_SUPPORTED 3
#define ERR_NOT_FOUND 6
#define ERR_INSUFFICIENT_SIZE 7

typedef struct {
  int index;
  double watts;
  char uuid[64];
} fake_device;

static fake_device devices[MAX_DEVICES];
static unsigned int device_count = 0;

static void load(void) {
  if (device_count > 0) return;
  const char *spec = getenv("LLEM_FAKE_NVML_WATTS");
  if (spec == NULL || *spec == '\0') spec = "300";
  char buf[512];
  snprintf(buf, sizeof buf, "%s", spec);
  for (char *tok = strtok(buf, ","); tok != NULL && device_count < MAX_DEVICES; tok = strtok(NULL, ",")) {
    fake_device *d = &devices[device_count];
    d->index = (int)device_count;
    d->watts = atof(tok);
    snprintf(d->uuid, sizeof d->uuid, "GPU-fake-nvml-%04u", device_count);
    device_count++;
  }
}

static int put_string(char *out, unsigned int length, const char *value) {
  if (out == NULL) return ERR_INVALID_ARGUMENT;
  if (strlen(value) + 1 > length) return ERR_INSUFFICIENT_SIZE;
  strcpy(out, value);
  return OK;
}

static fake_device *dev(void *handle) {
  fake_device *d = (fake_device *)handle;
  return (d >= devices && d < devices + device_count) ? d : NULL;
}

int nvmlInit_v2(void) { load(); return OK; }
int nvmlShutdown(void) { return OK; }
const char *nvmlErrorString(int rc) { return rc == OK ? "Success" : "fake NVML error"; }
int nvmlSystemGetDriverVersion(char *v, unsigned int n) { return put_string(v, n, "fake-nvml"); }
int nvmlSystemGetNVMLVersion(char *v, unsigned int n) { return put_string(v, n, "fake-nvml"); }
int nvmlSystemGetCudaDriverVersion_v2(int *v) { *v = 12040; return OK; }
int nvmlDeviceGetCount_v2(unsigned int *count) { load(); *count = device_count; return OK; }

int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void **handle) {
  load();
  if (index >= device_count) return ERR_INVALID_ARGUMENT;
  *handle = &devices[index];
  return OK;
}

int nvmlDeviceGetHandleByUUID(const char *uuid, void **handle) {
  load();
  for (unsigned int i = 0; i < device_count; i++)
    if (strcmp(devices[i].uuid, uuid) == 0) { *handle = &devices[i]; return OK; }
  return ERR_NOT_FOUND;
}

int nvmlDeviceGetUUID(void *h, char *out, unsigned int n) {
  fake_device *d = dev(h);
  return d == NULL ? ERR_INVALID_ARGUMENT : put_string(out, n, d->uuid);
}

int nvmlDeviceGetName(void *h, char *out, unsigned int n) {
  return dev(h) == NULL ? ERR_INVALID_ARGUMENT : put_string(out, n, "Fake NVML GPU (simulated)");
}

/** mJ = W x ms since the epoch, as of the last 100 ms step. */
int nvmlDeviceGetTotalEnergyConsumption(void *h, unsigned long long *energy) {
  fake_device *d = dev(h);
  if (d == NULL) return ERR_INVALID_ARGUMENT;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ms = (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000LL;
  long long stepped = (ms / 100LL) * 100LL - 1700000000000LL; // keep the counter well inside 64 bits
  *energy = (unsigned long long)(d->watts * (double)stepped);
  return OK;
}

int nvmlDeviceGetPowerUsage(void *h, unsigned int *mw) {
  fake_device *d = dev(h);
  if (d == NULL) return ERR_INVALID_ARGUMENT;
  *mw = (unsigned int)(d->watts * 1000.0);
  return OK;
}

int nvmlDeviceGetEnforcedPowerLimit(void *h, unsigned int *mw) {
  if (dev(h) == NULL) return ERR_INVALID_ARGUMENT;
  *mw = 700000;
  return OK;
}

typedef struct { unsigned int gpu, memory; } utilization;
int nvmlDeviceGetUtilizationRates(void *h, utilization *u) {
  if (dev(h) == NULL) return ERR_INVALID_ARGUMENT;
  u->gpu = 50;
  u->memory = 10;
  return OK;
}

typedef struct { unsigned long long total, free, used; } memory;
int nvmlDeviceGetMemoryInfo(void *h, memory *m) {
  if (dev(h) == NULL) return ERR_INVALID_ARGUMENT;
  m->total = 80ULL << 30;
  m->used = 1ULL << 30;
  m->free = m->total - m->used;
  return OK;
}

int nvmlDeviceGetClockInfo(void *h, int type, unsigned int *mhz) {
  if (dev(h) == NULL) return ERR_INVALID_ARGUMENT;
  *mhz = type == 0 || type == 1 ? 1980 : 2619;
  return OK;
}

int nvmlDeviceGetMaxClockInfo(void *h, int type, unsigned int *mhz) { return nvmlDeviceGetClockInfo(h, type, mhz); }

int nvmlDeviceGetTemperature(void *h, int sensor, unsigned int *c) {
  (void)sensor;
  if (dev(h) == NULL) return ERR_INVALID_ARGUMENT;
  *c = 40;
  return OK;
}

int nvmlDeviceGetCurrentClocksEventReasons(void *h, unsigned long long *reasons) {
  if (dev(h) == NULL) return ERR_INVALID_ARGUMENT;
  *reasons = 0;
  return OK;
}

int nvmlDeviceGetMigMode(void *h, unsigned int *current, unsigned int *pending) {
  (void)h; (void)current; (void)pending;
  return ERR_NOT_SUPPORTED;
}

int nvmlDeviceGetComputeRunningProcesses_v3(void *h, unsigned int *count, void *infos) {
  (void)infos;
  if (dev(h) == NULL) return ERR_INVALID_ARGUMENT;
  *count = 0;
  return OK;
}
