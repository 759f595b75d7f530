// registry_integration_tests: starts the real registryd (REGISTRYD_PATH) and
// speaks WebSocket/HTTP to it. See harness.hpp.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
