-- The compute backend: isrf.device picks it; cpu always works; values are
-- validated; auto resolves quietly to whatever this host has.
\set VERBOSITY terse

SHOW isrf.device;
SET isrf.device = 'cpu';
SELECT requested, backend, description LIKE 'cpu (BLAS: %)' AS described FROM isrf.backend_info();
SET isrf.device = 'auto';
SELECT requested, backend IN ('cpu', 'cuda') AS resolved FROM isrf.backend_info();
SELECT err($$SET isrf.device = 'gpu'$$);
SET isrf.device = 'CPU';
SHOW isrf.device;
RESET isrf.device;
-- the isrf.* prefix is reserved: misspelt settings are refused
SELECT err($$SET isrf.devcie = 'cpu'$$);
-- a CUDA library path that does not exist: cuda fails clearly, auto falls back
SET isrf.cuda_library = '/nonexistent/isrf_cuda.so';
SET isrf.device = 'cuda';
SELECT err($$SELECT * FROM isrf.backend_info()$$);
SET isrf.device = 'auto';
SELECT backend FROM isrf.backend_info();
RESET isrf.cuda_library;
RESET isrf.device;
