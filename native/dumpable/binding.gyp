{
  "targets": [
    {
      "target_name": "dumpable",
      "sources": ["dumpable.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
