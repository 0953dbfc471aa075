// An io_context whose pending handlers can be destroyed on purpose, before the objects they
// refer to.
//
// A coroutine suspended on an io_context (a session waiting for a read, a handler waiting for a
// thread pool's answer) is owned by the handler that would resume it; the io_context destroys
// such handlers, and so the coroutine frames with their locals, in its destructor. A process whose
// coroutines refer to objects that die before the io_context (a server context declared after
// it, an agent's link) must destroy them earlier, while those objects live: stop every thread
// that posts to the io_context, then call destroy_handlers().
#pragma once

#include <boost/asio/io_context.hpp>

namespace slipway::net {

// Not final: Asio detects executors by deriving from the type it is given.
class IoContext : public boost::asio::io_context {
 public:
  using boost::asio::io_context::io_context;

  // Destroys every handler that has not run, and the coroutine frames they own
  // (execution_context::shutdown). REQUIRES: run() has returned and no other thread posts to
  // this io_context any more. The destructor calls shutdown again, which then does nothing.
  void destroy_handlers() { shutdown(); }
};

}  // namespace slipway::net
