import lockkit,time,asyncio,faulthandler,sys
faulthandler.dump_traceback_later(20, exit=True)
async def tick():
    t=time.time()
    while True:
        await asyncio.sleep(1); print("tick", round(time.time()-t,1), flush=True)
async def m():
    asyncio.ensure_future(tick())
    t=time.time()
    try: await lockkit.AsyncLock('y', backend='redis://127.0.0.1:16400/0').acquire(timeout=float(sys.argv[1]))
    except Exception as e: print('async', type(e).__name__, str(e)[:150], round(time.time()-t,1))
asyncio.run(asyncio.wait_for(m(), 15))
