/*
 * Replay driver for fuzz targets in builds without libFuzzer: feeds every file
 * of the corpus folders (or single files) named on the command line to
 * LLVMFuzzerTestOneInput once, so that CI re-checks every saved input with the
 * normal compiler and the sanitizers.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Inputs bigger than this are not fuzz inputs; refuse rather than allocate. */
#define REPLAY_MAX_INPUT (4u << 20)

static int replay_file(const char *path)
{
  FILE *f = fopen(path, "rb");
  if (f == NULL) {
    fprintf(stderr, "replay: cannot open %s\n", path);
    return -1;
  }
  uint8_t *buf = malloc(REPLAY_MAX_INPUT);
  if (buf == NULL) {
    fclose(f);
    return -1;
  }
  size_t n = fread(buf, 1, REPLAY_MAX_INPUT, f);
  fclose(f);
  LLVMFuzzerTestOneInput(buf, n);
  free(buf);
  return 0;
}

int main(int argc, char **argv)
{
  unsigned count = 0;
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: no such corpus %s\n", argv[i]);
      return 1;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (replay_file(argv[i]) != 0)
        return 1;
      count++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    if (d == NULL)
      return 1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.')
        continue;
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
      if (replay_file(path) != 0) {
        closedir(d);
        return 1;
      }
      count++;
    }
    closedir(d);
  }
  /* An empty corpus proves nothing: a target must ship seed inputs. */
  if (count == 0) {
    fprintf(stderr, "replay: no inputs found\n");
    return 1;
  }
  printf("replay: %u inputs ran clean\n", count);
  return 0;
}
