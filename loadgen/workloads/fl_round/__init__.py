"""The study's federated-learning round: the workload (``workload``), the contract's protocol as
the coordinator and a pool member play it (``protocol``), and the model's words (``model``)."""
