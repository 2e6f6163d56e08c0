// SPDX-License-Identifier: MIT
//
// boost_mq: what a C++ programmer picks for a queue between processes,
// boost::interprocess::message_queue (header-only; a process-shared mutex
// and two condition variables around a ring of fixed-size slots in a named
// shared-memory object).  Priority 0 throughout, so it is a FIFO.
#include <cstdio>
#include <exception>
#include <new>

#include <boost/interprocess/ipc/message_queue.hpp>

#include "peer_boost_mq.h"

namespace bip = boost::interprocess;

extern "C" int boost_mq_create(const char *name, long depth, size_t size, char *why,
                               size_t whylen) {
    try {
        bip::message_queue mq(bip::create_only, name, static_cast<std::size_t>(depth), size);
        return 0; // the object stays until boost_mq_remove()
    } catch (const std::exception &e) {
        std::snprintf(why, whylen, "boost message_queue: %s", e.what());
        return -1;
    }
}

extern "C" void *boost_mq_open(const char *name) {
    try {
        return new bip::message_queue(bip::open_only, name);
    } catch (...) {
        return nullptr;
    }
}

extern "C" int boost_mq_send(void *mq, const void *msg, size_t len) {
    try {
        static_cast<bip::message_queue *>(mq)->send(msg, len, 0);
        return 0;
    } catch (...) {
        return -1;
    }
}

extern "C" int boost_mq_receive(void *mq, void *buf, size_t cap, size_t *len) {
    try {
        bip::message_queue::size_type got = 0;
        unsigned prio = 0;
        static_cast<bip::message_queue *>(mq)->receive(buf, cap, got, prio);
        *len = got;
        return 0;
    } catch (...) {
        return -1;
    }
}

extern "C" void boost_mq_close(void *mq) { delete static_cast<bip::message_queue *>(mq); }

extern "C" void boost_mq_remove(const char *name) { bip::message_queue::remove(name); }
