"""Control plane of deployment: roll approved model packages out (and back) and smoke test them."""
