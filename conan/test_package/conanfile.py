# Builds two examples against the package (find_package + registry::core):
# the README's embedding example and the protocol without a transport, and
# runs them: each checks its own results and exits non-zero when one does not
# hold.
import os

from conan import ConanFile
from conan.tools.build import can_run
from conan.tools.cmake import CMake, cmake_layout


class RegistryTestPackage(ConanFile):
    settings = "os", "arch", "compiler", "build_type"
    generators = "CMakeToolchain", "CMakeDeps"

    def requirements(self):
        self.requires(self.tested_reference_str)

    def layout(self):
        cmake_layout(self)

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def test(self):
        if can_run(self):
            for example in ("embed_registry", "protocol_embed"):
                self.run(os.path.join(self.cpp.build.bindir, example), env="conanrun")
