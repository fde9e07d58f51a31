/*
 * Documentation generated from the option table: the option list of
 * `meshd --help`, the example file of `meshd config-example`, and the
 * effective configuration of `meshd config-show`.
 */
#include "src/base/cfg_internal.h"

#include <stdio.h>
#include <string.h>

static const char *type_doc(const struct mesh_cfg_opt *o)
{
  switch (o->type) {
  case T_DURATION:
    return "duration";
  case T_SIZE:
    return "size";
  case T_INT:
    return "whole number";
  case T_LIST:
    return "list, comma separated";
  case T_ENUM:
    return "one of the names above";
  case T_BOOL:
    return "true or false";
  default:
    return NULL;
  }
}

static void default_text(const struct mesh_cfg_opt *o, char *buf, size_t len)
{
  if (o->def_doc != NULL)
    snprintf(buf, len, "%s", o->def_doc);
  else
    snprintf(buf, len, "%s", o->def != NULL ? o->def : "");
}

void mesh_config_print_help(FILE *f)
{
  fprintf(f, "Options (flag, then MESH_* environment variable, then meshd.conf key):\n");
  for (size_t i = 0; i < mesh_cfg_nopts; i++) {
    const struct mesh_cfg_opt *o = &mesh_cfg_opts[i];
    char env[MESH_CFG_NAME_MAX], key[MESH_CFG_NAME_MAX], def[96], flag[MESH_CFG_NAME_MAX * 2];
    mesh_cfg_env_name(o, env, sizeof env);
    mesh_cfg_ini_key(o, key, sizeof key);
    default_text(o, def, sizeof def);
    snprintf(flag, sizeof flag, "--%s %s", o->name, o->metavar);
    fprintf(f, "  %-26s %s\n", flag, o->help);
    fprintf(f, "      default: %s; env %s", def, env);
    if (o->no_file)
      fprintf(f, "\n");
    else
      fprintf(f, "; file %s\n", key);
  }
  fprintf(f, "  %-26s %s\n", "-h, --help", "Print this help.");
  fprintf(f, "  %-26s %s\n", "--version", "Print the version.");
}

void mesh_config_print_example(FILE *f)
{
  fprintf(f, "# meshd.conf: configuration of one meshd node.\n"
             "#\n"
             "# meshd reads $MESH_HOME/meshd.conf (or the file named by --config).\n"
             "# Flags override MESH_* environment variables, which override this file,\n"
             "# which overrides the built-in defaults. Every option is listed below at\n"
             "# its default, commented out; remove the '#' to change one.\n"
             "# Durations: 200ms, 5s, 10m, 24h, 7d, 1m30s. Sizes: 1024, 500MB, 2GiB.\n"
             "# Lists are comma separated; a repeated list key adds to the list.\n"
             "\n[meshd]\n");
  for (size_t i = 0; i < mesh_cfg_nopts; i++) {
    const struct mesh_cfg_opt *o = &mesh_cfg_opts[i];
    if (o->no_file)
      continue;
    char env[MESH_CFG_NAME_MAX], key[MESH_CFG_NAME_MAX], def[96];
    mesh_cfg_env_name(o, env, sizeof env);
    mesh_cfg_ini_key(o, key, sizeof key);
    default_text(o, def, sizeof def);
    fprintf(f, "\n# %s\n", o->help);
    if (o->type == T_ENUM) {
      fprintf(f, "# One of:");
      for (int c = 0; o->choices[c] != NULL; c++)
        fprintf(f, " %s", o->choices[c]);
      fprintf(f, ".\n");
    }
    const char *t = type_doc(o);
    if (t != NULL && o->type != T_ENUM) {
      fprintf(f, "# Type: %s.", t);
      char lo[32] = "", hi[32] = "";
      if (o->type == T_INT) {
        snprintf(lo, sizeof lo, "%llu", (unsigned long long)o->min);
        snprintf(hi, sizeof hi, "%llu", (unsigned long long)o->max);
      } else if (o->type == T_DURATION) {
        mesh_config_format_duration(o->min, lo, sizeof lo);
        mesh_config_format_duration(o->max, hi, sizeof hi);
      } else if (o->type == T_SIZE && o->max != UINT64_MAX) {
        mesh_config_format_size(o->min, lo, sizeof lo);
        mesh_config_format_size(o->max, hi, sizeof hi);
      }
      if (lo[0] != '\0')
        fprintf(f, " Range %s to %s.", lo, hi);
      fprintf(f, "\n");
    }
    fprintf(f, "# Flag --%s, environment %s.\n", o->name, env);
    if (o->def != NULL && o->def_doc != NULL)
      fprintf(f, "# Default: %s.\n#%s = %s\n", o->def_doc, key, o->def);
    else if (o->def != NULL)
      fprintf(f, "#%s = %s\n", key, o->def);
    else
      fprintf(f, "# Default: %s.\n#%s =\n", def, key);
  }
}

static const char *const source_names[] = {"default", "file", "environment", "flag"};

void mesh_config_print_effective(FILE *f, const mesh_config *cfg)
{
  fprintf(f, "# effective configuration (config file: %s)\n[meshd]\n",
          cfg->config_file != NULL ? cfg->config_file : "none");
  for (size_t i = 0; i < mesh_cfg_nopts; i++) {
    const struct mesh_cfg_opt *o = &mesh_cfg_opts[i];
    if (o->no_file)
      continue; /* shown in the header line */
    char key[MESH_CFG_NAME_MAX];
    mesh_cfg_ini_key(o, key, sizeof key);
    const void *fp = (const char *)cfg + o->off;
    const char *src = source_names[cfg->source[i] <= MESH_CFG_FLAG ? cfg->source[i] : 0];
    char num[64];
    switch (o->type) {
    case T_LIST: {
      const mesh_strlist *l = fp;
      fprintf(f, "%s = ", key);
      for (size_t k = 0; k < l->len; k++)
        fprintf(f, "%s%s", k ? "," : "", l->items[k]);
      fprintf(f, "  ; %s\n", src);
      continue;
    }
    case T_BOOL:
      snprintf(num, sizeof num, "%s", *(const bool *)fp ? "true" : "false");
      break;
    case T_INT:
      snprintf(num, sizeof num, "%d", *(const int *)fp);
      break;
    case T_DURATION:
      mesh_config_format_duration(*(const uint64_t *)fp, num, sizeof num);
      break;
    case T_SIZE:
      mesh_config_format_size(*(const uint64_t *)fp, num, sizeof num);
      break;
    case T_ENUM:
      snprintf(num, sizeof num, "%s", o->choices[*(const int *)fp]);
      break;
    default: {
      const char *v = *(char *const *)fp;
      if (o->secret)
        fprintf(f, "; %s is %s  ; %s\n", key, v != NULL ? "set (not shown)" : "not set", src);
      else
        fprintf(f, "%s = %s  ; %s\n", key, v != NULL ? v : "", src);
      continue;
    }
    }
    fprintf(f, "%s = %s  ; %s\n", key, num, src);
  }
}
