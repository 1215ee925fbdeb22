"""Model tests run on one CPU thread: their tensors are small, and on a shared machine
OpenMP threads that spin at barriers while another process holds the cores slow small
operations down many times over."""

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
