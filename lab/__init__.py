"""A lab of real Debian hosts on one machine: debootstrap + overlay + systemd-nspawn + netns."""
