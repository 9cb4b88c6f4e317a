#!/bin/sh
# aaPanel Node project under cgrun: what goes in the project's start command.
#
# aaPanel starts a Node project as its run user, www by default: aaPanel's installer creates
# the user www, and its sites and projects run as it. (On a host without aaPanel there is no
# www: use www-data on Debian and Ubuntu, or create www first with
# useradd --system --no-create-home --shell /sbin/nologin www.) cgrun started as www has no
# group it may manage and exits 125, so:
#   1. install cgrun as root: dpkg -i cgrun_X.Y.Z-1_amd64.deb (it installs /usr/bin/cgrun; README
#      "Install"); with the static binary instead, install -m 755 cgrun-vX.Y.Z-linux-amd64
#      /usr/local/bin/cgrun and write /usr/local/bin/cgrun below
#   2. in the project's settings set the run user to root, and the start command to the line
#      below (or to this file, made executable: chmod 755 it); --user www runs node as www again,
#      with www's groups and HOME, in a group that stays root's, so node can neither raise its
#      limit nor leave its group
#   3. restart the project; `cgrun ps` and `cgrun status myapp` show it (as www too); when the
#      project does not start, its log in aaPanel (or journalctl) has cgrun's one line saying why
#
# The working directory and the environment aaPanel gives the project pass through to node
# (HOME, USER, LOGNAME and SHELL become www's). Not tested against aaPanel itself: the tests
# run this file as root with a user www made as above, and the same shape (a root process
# manager, cgrun --user) with supervisord and PM2.
exec /usr/bin/cgrun run --user www --name myapp --memory-max 512M --restart on-oom \
    --max-restarts 0 -- /usr/bin/node /www/wwwroot/myapp/app.js
