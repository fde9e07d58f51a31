/* Placeholder translation unit so that a part with no sources yet still forms a library. */
typedef int mesh_empty_unit;
