"""`python -m prez ./prez.conf` is `prez-server ./prez.conf`."""

from prez.cli import server_main

server_main()
