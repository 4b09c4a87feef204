// Where gRPC's buffers for large messages live. glibc serves a malloc above its mmap threshold with a fresh
// mapping and gives freed heap tops back to the system, so each large message faults its pages in again, and
// every unmap interrupts all cores to flush their TLBs. Under this machine's hypervisor that made a 1 MB
// message 17-21x slower than the same bytes over a TCP socket (`mlxd bench comm`).
#pragma once

namespace mlxd::comm::rpc {

// Keeps those buffers in the heap: allocations under 4 MB never get a mapping of their own (a message is sent
// and received in pieces of at most chunk_bytes), and up to 64 MB of free heap stays mapped for the next
// ones. Process-wide, once; called by every process that serves or calls over gRPC.
void keep_message_buffers();

}  // namespace mlxd::comm::rpc
