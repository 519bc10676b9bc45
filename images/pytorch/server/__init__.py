"""llem PyTorch backend: a small OpenAI-compatible server around transformers.

The HTTP layer (httpd, openai_api) and the scheduler (engine) use the standard library only; the model
sits behind the `BatchRunner` interface (runner.py) so that the server can be tested with a fake
runner where torch is not installed. torch and transformers are imported only by torch_runner.py.
"""

__version__ = "0.1.0"
