"""What an operator sees when a LISAServe meets a state database a newer LISA wrote."""
import os
import sqlite3
import subprocess

from conftest import ADMIN_KEY, BIN, free_port, wait_healthy


def test_lisaserve_refuses_a_newer_schema_without_touching_it(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LISA_")}
    env["LISA_ADMIN_KEY"] = ADMIN_KEY
    command = [str(BIN / "LISAServe"), "--port", str(free_port()), "--data-dir", str(data)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(f"http://127.0.0.1:{command[2]}/health", process)
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0

    database = data / "lisa.sqlite"
    with sqlite3.connect(database) as connection:
        current = connection.execute("SELECT version FROM lisa_schema").fetchone()[0]
        connection.execute("UPDATE lisa_schema SET version = ?", (current + 1,))
        tables = connection.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall()

    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 69, result
    assert result.stderr.startswith(f"LISAServe: cannot start: The state database was written by a newer LISA (schema {current + 1}")
    assert "Usage:" not in result.stderr and "Usage:" not in result.stdout
    with sqlite3.connect(database) as connection:
        assert connection.execute("SELECT version FROM lisa_schema").fetchone()[0] == current + 1
        assert connection.execute("SELECT name, sql FROM sqlite_master ORDER BY name").fetchall() == tables
