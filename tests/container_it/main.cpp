// registry_container_it_tests: the real registryd (REGISTRYD_PATH) managing
// containers on real Podman API services started by the tests.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
