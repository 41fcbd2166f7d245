"""The HA cluster testbed moved to testbed/ha.py (bench/ uses it too); kept for old imports."""

from testbed.ha import *  # noqa: F401,F403
from testbed.ha import (ACTIVATED, CLUSTER_ADDR, CLUSTER_LAN_ADDR, NODE_ADDRS,  # noqa: F401
                        NODE_LAN_ADDRS, SYNC_ADDRS, HaTestbed, HaTopology)
