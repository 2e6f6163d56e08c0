// SPDX-License-Identifier: MIT
// The scoped macros work from C++ (overloads instead of _Generic).
#include <mproc.h>

int mproc_cxx_scoped(mproc_lock *lock, mproc_rlock *rlock);
int mproc_cxx_scoped(mproc_lock *lock, mproc_rlock *rlock) {
    int total = 0, rc = 0;
    MPROC_WITH(lock) { total += 1; }
    MPROC_WITH_RC(rlock, rc) { total += rc; }
    {
        MPROC_GUARD(lock);
        total += 2;
    }
    return total;
}

int mproc_cxx_scoped_data(mproc_value *value, mproc_array *array);
int mproc_cxx_scoped_data(mproc_value *value, mproc_array *array) {
    int total = 0, rc = 0;
    MPROC_WITH(value) { total += 1; }
    MPROC_WITH_RC(array, rc) { total += rc; }
    {
        MPROC_GUARD(array);
        total += 2;
    }
    return total;
}
