"""A bare pika echo consumer: the floor of what one Python RPC round trip costs here.

It consumes queue ``bench.bare`` and publishes each body back to ``reply_to`` on the
default exchange with the same ``correlation_id``. No framework, no JSON decoding.
"""

import os
import signal
import sys

import pika

QUEUE = "bench.bare"


def main() -> None:
    params = pika.URLParameters(os.environ.get("AMQP_URI", "amqp://guest:guest@127.0.0.1:5672/"))
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare(QUEUE, auto_delete=True)

    def on_message(channel, _method, props, body):
        channel.basic_publish("", props.reply_to, body,
                              pika.BasicProperties(correlation_id=props.correlation_id))

    ch.basic_consume(QUEUE, on_message, auto_ack=True)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    print("bare echo consuming", QUEUE, flush=True)
    while not stopping:
        conn.process_data_events(time_limit=0.5)
    conn.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
