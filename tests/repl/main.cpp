// registry_repl_tests: REPL execution through the real registryd
// (REGISTRYD_PATH) on a real Podman API service.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
