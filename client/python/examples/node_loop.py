"""A node's loop: ask accelsel which strategy to run, run the job, report what happened.

    ACCELSEL_SERVER=127.0.0.1:50051 python node_loop.py --jobs 10

run_job() stands in for the node's engine: replace it with the call that starts the job under the chosen strategy
and measures it. Here it sleeps a few milliseconds so the loop runs anywhere."""
import argparse
import random
import time

import accelsel
from accelsel import pb


def run_job(strategy_id, prompt_tokens, output_tokens):
    """Placeholder engine: returns (status, metrics). A real node starts vLLM, llama.cpp, ... here."""
    start = time.monotonic()
    time.sleep(random.uniform(0.001, 0.005))
    e2e_ms = (time.monotonic() - start) * 1000.0
    return pb.RUN_STATUS_OK, pb.RunMetrics(e2e_latency_ms=e2e_ms)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--node", default="node-example")
    parser.add_argument("--model", default="meta-llama/Meta-Llama-3-8B")
    parser.add_argument("--accelerator", default="Nvidia A100 GPU")
    parser.add_argument("--fallback-strategy", default=None, help="strategy to run when accelsel cannot answer")
    args = parser.parse_args()

    client = accelsel.Client(fallback_strategy=args.fallback_strategy)  # $ACCELSEL_SERVER, $ACCELSEL_TOKEN
    with accelsel.TelemetrySender(client, on_rejected=lambda run_id, why: print("rejected", run_id, why)) as sender:
        for _ in range(args.jobs):
            prompt, output = random.choice([(128, 128), (1024, 128), (2048, 1024)])
            task = accelsel.task_context(model=args.model, accelerator=args.accelerator, count=1,
                                         prompt_tokens=prompt, output_tokens=output, batch=1)
            choice = client.select(task, explore=True, node_id=args.node)
            if choice.best is None:
                print("no strategy to run for this task")
                continue
            status, metrics = run_job(choice.best, prompt, output)
            # decision_id ties the run to the answer it followed (empty for a fallback answer): live quality.
            sender.send(node_id=args.node, context=task, strategy_id=choice.best, decision_id=choice.decision_id,
                        status=status, metrics=metrics)
        sender.flush(30)
        print("reported %d runs" % sender.stats()["durable"])


if __name__ == "__main__":
    main()
