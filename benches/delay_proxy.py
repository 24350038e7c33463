"""A TCP relay that adds a fixed one-way delay in each direction (side_by_side.sh, L1 and L2).

This machine's kernel has no netem (CONFIG_NET_SCH_NETEM is not set), so the link's delay is
added here and its rate by tc tbf on the veth pair behind it:

    python3 delay_proxy.py LISTEN_HOST LISTEN_PORT TARGET_HOST TARGET_PORT ONE_WAY_SECONDS

Every chunk read from one side is written to the other ONE_WAY_SECONDS after it was read, in
order, so a request and its answer take one round trip more; bulk data keeps its rate (the
relay reads ahead while it waits). TCP_NODELAY is on both sockets (asyncio's default).
"""

import asyncio
import sys


async def relay(reader, writer, delay):
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.ensure_future(send())
    try:
        while True:
            data = await reader.read(1 << 18)
            queue.put_nowait((loop.time() + delay, data))
            if not data:
                break
        await sender
    except (ConnectionError, OSError):
        sender.cancel()
        writer.close()


async def main(listen_host, listen_port, target_host, target_port, delay):
    async def handle(client_r, client_w):
        try:
            server_r, server_w = await asyncio.open_connection(target_host, target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            relay(client_r, server_w, delay),
            relay(server_r, client_w, delay),
            return_exceptions=True,
        )

    server = await asyncio.start_server(handle, listen_host, listen_port)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    host, port, thost, tport, one_way = sys.argv[1:6]
    asyncio.run(main(host, int(port), thost, int(tport), float(one_way)))
