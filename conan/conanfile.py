# Conan 2 recipe for the registry library (not registryd): the parts as
# components (registry::core always; containers, deploy, repl, file_store and client
# by option). `conan create conan -pr:a conan/profiles/debian12` builds it
# against Debian's packages, named in the profile's [platform_requires], with
# no remote.
import os

from conan import ConanFile
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.errors import ConanInvalidConfiguration
from conan.tools.files import copy, load


class RegistryConan(ConanFile):
    name = "registry"
    license = "Apache-2.0"
    description = ("A runtime-agnostic C++20 coroutine library: service registration with TTL leases, discovery, "
                   "a revisioned event stream, container leases, package deployment, REPL execution")
    topics = ("service-registry", "service-discovery", "coroutines", "control-plane")
    package_type = "static-library"
    settings = "os", "arch", "compiler", "build_type"
    options = {
        "containers": [True, False],
        "deploy": [True, False],
        "repl": [True, False],
        "file_store": [True, False],
        "client": [True, False],  # registry::client, the C++ client of registryd (Boost.Asio, OpenSSL)
    }
    default_options = {"containers": True, "deploy": True, "repl": True, "file_store": True, "client": False}
    generators = "CMakeDeps"

    def set_version(self):
        # The one version: project(registry VERSION x.y.z) in CMakeLists.txt.
        text = load(self, os.path.join(self.recipe_folder, "..", "CMakeLists.txt"))
        self.version = text.split("project(registry VERSION ", 1)[1].split()[0]

    def export_sources(self):
        root = os.path.join(self.recipe_folder, "..")
        # clients/cpp and the WebSocket framing it compiles in: registry::client.
        for pattern in ("CMakeLists.txt", "LICENSE", "cmake/*", "include/*", "lib/*", "clients/cpp/*",
                        "daemon/websocket/*"):
            copy(self, pattern, root, self.export_sources_folder)

    def validate(self):
        if self.options.repl and not self.options.containers:
            raise ConanInvalidConfiguration("registry: the repl part runs on the containers part (containers=True)")

    def requirements(self):
        self.requires("simdjson/3.0.1")
        if self.options.deploy:
            self.requires("yaml-cpp/0.7.0")
            self.requires("libarchive/3.6.2")
        if self.options.client:
            self.requires("boost/1.81.0")
            self.requires("openssl/3.0.19")

    def layout(self):
        cmake_layout(self)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["REGISTRY_DAEMON"] = False
        tc.cache_variables["REGISTRY_TESTS"] = False
        tc.cache_variables["REGISTRY_WERROR"] = False
        tc.cache_variables["REGISTRY_INSTALL"] = True
        tc.cache_variables["REGISTRY_CLIENT"] = bool(self.options.client)
        for part in ("containers", "deploy", "repl", "file_store"):
            tc.cache_variables[f"REGISTRY_PART_{part.upper()}"] = bool(self.options.get_safe(part))
        tc.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        cmake = CMake(self)
        cmake.install()

    def package_info(self):
        # Consumers use the package's own CMake config (find_package(registry
        # CONFIG) and registry::core ...): it knows each part's dependencies.
        # The package folder goes on CMAKE_PREFIX_PATH (builddirs; Conan reads
        # them from the components), where find_package finds lib/cmake/registry.
        self.cpp_info.set_property("cmake_find_mode", "none")
        self.cpp_info.components["coro"].libs = ["registry_coro"]
        core = self.cpp_info.components["core"]
        core.builddirs = ["."]
        core.libs = ["registry_core"]
        core.requires = ["coro", "simdjson::simdjson"]
        self.cpp_info.components["notify"].libs = ["registry_notify"]
        self.cpp_info.components["notify"].requires = ["core"]
        if self.options.containers:
            self.cpp_info.components["containers"].libs = ["registry_containers"]
            self.cpp_info.components["containers"].requires = ["core"]
        if self.options.deploy:
            self.cpp_info.components["deploy"].libs = ["registry_deploy"]
            self.cpp_info.components["deploy"].requires = ["core", "yaml-cpp::yaml-cpp", "libarchive::libarchive"]
        if self.options.repl:
            self.cpp_info.components["repl"].libs = ["registry_repl"]
            self.cpp_info.components["repl"].requires = ["core", "containers"]
        if self.options.file_store:
            self.cpp_info.components["file_store"].libs = ["registry_file_store"]
            self.cpp_info.components["file_store"].requires = ["core"]
        if self.options.client:
            self.cpp_info.components["client"].libs = ["registry_client"]
            self.cpp_info.components["client"].requires = ["core", "boost::boost", "openssl::openssl"]
