// What registryd's store says of itself for GET /healthz: its kind and, for a
// store behind the network (etcd), whether it can be reached now and when it
// last could.
#pragma once

#include <string>

namespace registryd {

struct store_health {
    std::string kind = "file";  // config store.kind
    bool reachable = true;      // false: the store cannot be reached now
    std::string why;            // when not reachable: the last error
    std::string detail;         // "last contact 2026-12-05T01:02:03.456Z" (etcd); empty: nothing to say
};

}  // namespace registryd
