// Boost.JSON's implementation, compiled once for the whole daemon (header-only
// mode: every other translation unit includes only the headers).
#include <boost/json/src.hpp>
